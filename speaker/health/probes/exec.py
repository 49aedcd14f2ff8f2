"""Exec checks: run a command; exit status 0 means up.

No shell unless `exec.shell` is set. The environment carries BACKEND_ADDRESS,
BACKEND_PORT, BACKEND_LABEL and SERVICE_NAME (plus PATH). Output (stdout and
stderr together) is kept up to `max_output_bytes` for status and discarded
beyond. The command runs in its own process group; on timeout the whole group
(the command and anything it started) is killed by that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from speaker.health.outcome import PASSED, CheckFailedError, Outcome
from speaker.health.probes import Probe
from speaker.health.targets import Target

_CHUNK = 65536


def exec_env(target: Target) -> dict[str, str]:
    """Environment of the command."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "BACKEND_ADDRESS": str(target.address),
        "BACKEND_PORT": "" if target.port is None else str(target.port),
        "BACKEND_LABEL": target.label,
        "SERVICE_NAME": target.service,
    }


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(_CHUNK):
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (start_new_session)


def exec_probe(target: Target) -> Probe:
    """Probe for an `exec` check."""
    params = target.check.exec
    if params is None:  # the config model requires the section; keep mypy and users honest
        raise ValueError("exec check without an exec section")
    argv = (["/bin/sh", "-c", *params.command] if params.shell else list(params.command))
    env = exec_env(target)
    cap = params.max_output_bytes

    async def probe() -> Outcome:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        try:
            assert proc.stdout is not None  # noqa: S101 - PIPE was requested
            output = await _read_capped(proc.stdout, cap)
            code = await proc.wait()
        finally:
            _kill_group(proc)
            if proc.returncode is None:
                await proc.wait()
        if code == 0:
            return PASSED
        text = output.decode(errors="replace").strip()
        if code < 0:
            raise CheckFailedError(f"signal_{-code}", text)
        raise CheckFailedError(f"exit_{code}", text)

    return probe
