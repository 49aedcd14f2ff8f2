"""ExaBGP as a supervised child process (start, log, stop, back off).

The child dies with the supervisor (PR_SET_PDEATHSIG), its output becomes
structured log lines, and a crash is followed by a restart after a delay that
doubles per quick failure (`restart_delay`, pure). Also here: the source
address the kernel would use towards a peer without `local_address` (the
version of ExaBGP is read from files: `speaker.bgp.install`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from speaker.logs import event_log
from speaker.model import IPAddress

LOG = event_log(__name__)
_PR_SET_PDEATHSIG = 1
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 10.0
"""A run this long counts as healthy (sessions form within seconds): the next
crash restarts at once, as the first one does."""


def restart_delay(quick_failures: int) -> float:
    """Delay before a restart after `quick_failures` quick failures in a row: the
    first restart is immediate (routes are missing meanwhile), then 0.5 s doubling
    up to 30 s (a crash loop must not burn the CPU)."""
    if quick_failures <= 0:
        return 0.0
    return min(BACKOFF_FIRST_S * 2.0 ** (quick_failures - 1), BACKOFF_MAX_S)


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def _output(argv: Sequence[str], limit_s: float = 20.0) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL)
    except OSError as exc:
        raise RuntimeError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(limit_s):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, ""
    return proc.returncode or 0, out.decode("utf-8", "replace")


async def source_address(peer: IPAddress, netns: str | None) -> IPAddress | None:
    """Source address the kernel picks towards `peer` (`ip route get`)."""
    from ipaddress import ip_address
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "route", "get", str(peer)]
    code, text = await _output(argv, 5.0)
    if code != 0:
        return None
    try:
        routes = json.loads(text)
        return ip_address(routes[0]["prefsrc"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class ExaBgpProcess:
    """One ExaBGP child at a time; `run_once()` starts it and returns its exit code."""

    def __init__(self, on_output: Callable[[str], None]) -> None:
        self._on_output = on_output
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """PID of the running child, if any."""
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def run_once(self, argv: Sequence[str], env: dict[str, str], cwd: Path) -> int:
        """Run ExaBGP until it exits; forward its output line by line."""
        self.proc = await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=str(cwd), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent)  # PDEATHSIG: ExaBGP must not outlive us
        LOG.info("exabgp_started", reason="start", pid=self.proc.pid)
        assert self.proc.stdout is not None  # noqa: S101 - PIPE was requested
        try:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    break
                self._on_output(raw.decode("utf-8", "replace").rstrip())
            return await self.proc.wait()
        finally:
            await self.stop()

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the child (by PID), SIGKILL after `grace_s`, reap it."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(grace_s):
                await proc.wait()
        except TimeoutError:
            LOG.warning("exabgp_kill", reason="sigterm_ignored", pid=proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # cancelled while waiting: never leave ExaBGP behind
            raise
