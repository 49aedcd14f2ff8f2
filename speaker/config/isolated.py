"""Load and validate a config file in a child process, with limits (defence in depth).

`await load_isolated(path)` is what a reload uses: nothing in the file can
block, crash or exhaust the supervisor. The supervisor only opens the file
(non-blocking, so a FIFO cannot freeze it), refuses anything that is not a
regular file or is larger than `max_bytes`, and hands the bytes to a child
(`python -m speaker.config.isolated`) that parses and validates them under
RLIMIT_AS / RLIMIT_CPU, dies with its parent, and is killed after `timeout`.
The child answers with the validated `AppConfig` (pickled) or its issues; a
crash (segfault on a pathological YAML), a memory or time overrun is turned
into `ConfigUnreadableError` with a plain reason, so the reload is rejected
and the running config kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from speaker.childproc import preexec
from speaker.config.load import ConfigError, ConfigIssue, ConfigUnreadableError, parse_text
from speaker.config.model import AppConfig

WALL_FACTOR = 2.5
"""Wall-clock allowance of a parse, in units of its CPU limit (10 s -> 25 s, inside
the API's 30 s reload timeout)."""


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one isolated parse may use."""

    max_bytes: int = 16 << 20
    """Largest config file accepted (16 MiB; a 5,000-backend config is ~1 MiB)."""
    timeout: float = 10.0
    """CPU-time limit of the parse (RLIMIT_CPU of the child, start-up included); the
    wall clock may take `WALL_FACTOR` times as long, so that a slow or busy machine
    (one vCPU under TCG, next to ExaBGP) is not mistaken for hostile input, which is
    CPU-bound and meets the CPU limit either way."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS of the child (address space, 1 GiB)."""


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing non-regular files (FIFO, device) and oversize files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigUnreadableError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigUnreadableError(f"{path}: not a regular file (a FIFO, device or "
                                        "directory is never read as a config)")
        if info.st_size > max_bytes:
            raise ConfigUnreadableError(f"{path}: {info.st_size} bytes is larger than the "
                                        f"{max_bytes}-byte limit for a config file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise ConfigUnreadableError(f"{path}: larger than the {max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _crash_reason(returncode: int) -> str:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        if sig is signal.SIGXCPU:
            return "the parser ran out of CPU time"
        return f"the parser crashed ({sig.name})"
    return f"the parser exited with status {returncode}"


async def load_isolated(path: str | Path, limits: ParseLimits | None = None) -> AppConfig:
    """Read, parse and validate `path` in a limited child; raise ConfigError or
    ConfigUnreadableError (never anything else for bad input)."""
    path = Path(path)
    limits = limits or ParseLimits()
    data = read_bounded(path, limits.max_bytes)
    # The child sets its own limits and parent-death signal first thing (no preexec_fn:
    # running Python between fork and exec in a threaded supervisor can crash the child).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "speaker.config.isolated", str(path),
        str(limits.memory_bytes), str(max(1, int(limits.timeout) + 1)), str(os.getpid()),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(limits.timeout * WALL_FACTOR):
            out, _ = await proc.communicate(data)
    except TimeoutError:
        raise ConfigUnreadableError(f"{path}: parsing took longer than "
                                    f"{limits.timeout * WALL_FACTOR:g} s (rejected)") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not out:
        raise ConfigUnreadableError(f"{path}: rejected: {_crash_reason(proc.returncode or 0)}")
    kind, payload = await asyncio.to_thread(pickle.loads, out)
    if kind == "ok" and isinstance(payload, AppConfig):
        return payload
    if kind == "issues":
        raise ConfigError(str(path), [ConfigIssue(*i) for i in payload])
    raise ConfigUnreadableError(str(payload))


def _child(source: str) -> tuple[str, object]:
    text = sys.stdin.buffer.read()
    try:
        return "ok", parse_text(text.decode("utf-8"), source)
    except UnicodeDecodeError as exc:
        return "unreadable", f"{source}: cannot read: {exc}"
    except ConfigError as exc:
        return "issues", [(i.path, i.message, i.line) for i in exc.issues]
    except ConfigUnreadableError as exc:
        return "unreadable", str(exc)
    except MemoryError:
        return "unreadable", f"{source}: rejected: the parser ran out of memory"
    except RecursionError:
        return "unreadable", f"{source}: rejected: the document is nested too deeply"


def _limit_self(argv: list[str]) -> None:
    """Apply the limits the parent asked for (argv: source, memory, cpu, parent pid)."""
    if len(argv) < 5:
        return
    preexec(memory_bytes=int(argv[2]), cpu_seconds=int(argv[3]))()
    if os.getppid() != int(argv[4]):  # the parent died before the death signal was set
        sys.exit(1)


if __name__ == "__main__":
    _limit_self(sys.argv)
    result = _child(sys.argv[1] if len(sys.argv) > 1 else "<config>")
    sys.stdout.buffer.write(pickle.dumps(result))
    sys.stdout.buffer.flush()
