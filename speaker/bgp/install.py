"""Which ExaBGP an executable is, and how to start it, read from files.

`exabgp --version` imports all of ExaBGP (~1.2 s on this machine kind) and sat
on the start-up path. A pip-installed `exabgp` is a console script listed in
the RECORD of its `exabgp-X.Y.Z.dist-info` directory, next to the interpreter
in its shebang: reading those takes well under a millisecond and also names
the interpreter, which the 4.2 repair (`speaker.bgp.refreshfix`) needs. Only an
executable that is not such a script (a wrapper, a distribution package
without RECORD) is probed with `--version` / `version`, once per executable
per process.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from speaker.bgp.exaconf import ExaBgpVersion
from speaker.logs import event_log

LOG = event_log(__name__)
_DIST = re.compile(r"^exabgp-(\d+)\.(\d+)(?:\.(\d+))?[^/]*\.dist-info$")


@dataclass(frozen=True, slots=True)
class ExaBgpInstall:
    """An ExaBGP executable, its version, and its interpreter when it is a
    pip console script (None: started as it is)."""

    executable: Path
    version: ExaBgpVersion
    python: Path | None
    found_by: str
    """`record` (dist-info RECORD, no process started) or `probe` (`--version`)."""


def parse_version(text: str) -> ExaBgpVersion | None:
    """Version from `exabgp --version` / `exabgp version` output."""
    match = re.search(r"ExaBGP\s*:?\s*(\d+)\.(\d+)(?:\.(\d+))?", text, re.IGNORECASE)
    if not match:
        return None
    return ExaBgpVersion(int(match.group(1)), int(match.group(2)),
                         ".".join(g for g in match.groups() if g is not None))


def _shebang_python(exe: Path) -> Path | None:
    try:
        with exe.open("rb") as handle:
            first = handle.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if len(words) != 1 or "python" not in Path(words[0]).name:
        return None  # `#!/usr/bin/env python3` and wrappers are probed instead
    return Path(words[0])


def _listed(dist_info: Path, exe: Path) -> bool:
    """Whether the RECORD of `dist_info` installed `exe` (RECORD paths are
    relative to site-packages)."""
    try:
        record = (dist_info / "RECORD").read_text("utf-8", "replace")
    except OSError:
        return False
    for line in record.splitlines():
        name = line.split(",", 1)[0]
        if Path(name).name != exe.name:
            continue
        try:
            if (dist_info.parent / name).resolve() == exe.resolve():  # relative to site-packages
                return True
        except OSError:
            continue
    return False


def from_record(exe: Path) -> ExaBgpInstall | None:
    """The install of a pip console script, from its shebang and dist-info RECORD."""
    python = _shebang_python(exe)
    if python is None:
        return None
    root = python.parent.parent  # a virtualenv's bin/python (not resolved: venvs symlink)
    for site in sorted(root.glob("lib/python*/site-packages")):
        for dist_info in sorted(site.glob("exabgp-*.dist-info")):
            match = _DIST.match(dist_info.name)
            if match and _listed(dist_info, exe):
                parts = [g for g in match.groups() if g is not None]
                version = ExaBgpVersion(int(parts[0]), int(parts[1]), ".".join(parts))
                return ExaBgpInstall(exe, version, python, "record")
    return None


async def _output(argv: list[str], limit_s: float = 20.0) -> str:
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
        return ""
    return out.decode("utf-8", "replace")


_FOUND: dict[tuple[str, int, int], ExaBgpInstall] = {}


def _cache_key(exe: Path) -> tuple[str, int, int]:
    try:
        stat = exe.stat()
    except OSError as exc:
        raise RuntimeError(f"cannot run {exe}: {exc.strerror or exc}") from exc
    return (str(exe), stat.st_size, stat.st_mtime_ns)


async def find_install(exe: Path) -> ExaBgpInstall:
    """What `exe` is (cached per path, size and mtime). Raises RuntimeError when
    it cannot be run or does not say its version."""
    key = _cache_key(exe)
    if key in _FOUND:
        return _FOUND[key]
    found = from_record(exe)
    if found is None:
        for args in (["--version"], ["version"]):
            version = parse_version(await _output([str(exe), *args]))
            if version is not None:
                found = ExaBgpInstall(exe, version, None, "probe")
                break
        else:
            raise RuntimeError(f"cannot tell the version of {exe}")
        LOG.info("exabgp_version_probed", reason="not_a_pip_console_script",
                 exabgp=str(exe), version=found.version.text)
    _FOUND[key] = found
    return found
