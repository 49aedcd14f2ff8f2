"""BfdRunner: the Component that runs the BFD child for `speaker run`.

It computes the sessions from the config (`spec.sessions_from_config`), starts
`python -m speaker.bfd.child` when at least one peer asks for BFD (PR_SET_PDEATHSIG:
the child dies with us; restarted with the ExaBGP backoff when it crashes),
sends it the sessions over the framed channel (again on a reload: timers change
live, with a Poll Sequence), and turns the child's frames into the session table
behind `speaker status`, the metrics and the logs. Nothing here is
time-critical: a slow loop here delays what status shows, never a BFD packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from speaker.bfd.channel import FrameError, FrameReader, encode
from speaker.bfd.metrics import CHILD_RESTARTS, SESSION_UP, STATE_CHANGES
from speaker.bfd.spec import SessionSpec, sessions_from_config
from speaker.bgp.process import STABLE_AFTER_S, restart_delay
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.seams import Wake

LOG = event_log(__name__)
_PR_SET_PDEATHSIG = 1
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True, slots=True)
class BfdPeerState:
    """What the appliance's BFD session to one peer looks like now."""

    peer: str
    address: str
    state: str
    """up, down, init, admin_down, or not_running (no child)."""
    since: float
    """Monotonic time of the last state change."""
    diag: str
    """Local diagnostic (why it went down): detect_time_expired, neighbor_signaled_down..."""
    remote_diag: str
    changes: int
    multihop: bool
    min_tx_ms: int
    min_rx_ms: int
    multiplier: int


def _die_with_parent() -> None:
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class BfdRunner:
    """Component (run / reconfigure / status) owning the BFD child process.

    `netns` runs the child inside that network namespace (`ip netns exec`), for
    tests that keep the supervisor in the host namespace; `child_argv` replaces the
    child's command line (supervision tests)."""

    def __init__(self, config: AppConfig, wake: Wake, *, netns: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 child_argv: Sequence[str] | None = None) -> None:
        self._wake = wake
        self._netns = netns
        self._clock = clock
        self._argv = list(child_argv or [sys.executable, "-m", "speaker.bfd.child"])
        self._specs: tuple[SessionSpec, ...] = ()
        self._states: dict[str, BfdPeerState] = {}
        self._details: dict[str, dict[str, Any]] = {}
        self._errors: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._child_pid: int | None = None
        self.sched = ""
        self.restarts = 0
        self.last_exit: int | None = None
        self._log_tail: list[str] = []
        self._apply(sessions_from_config(config))

    # -- Component ------------------------------------------------------------------------

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt the sessions of a new config; the child changes them live."""
        specs = sessions_from_config(config)
        if specs != self._specs:
            LOG.info("bfd_reconfigured", reason="config_changed", sessions=len(specs))
            self._apply(specs)
            self._changed.set()

    def status(self) -> dict[str, Any]:
        """The child and every session (with the child's last counters)."""
        now = self._clock()
        return {
            "child": {"running": self._child_pid is not None, "pid": self._child_pid,
                      "sched": self.sched, "restarts": self.restarts,
                      "last_exit": self.last_exit, "log_tail": self._log_tail[-10:]},
            "sessions": {name: {**self._plain(s, now), "detail": self._details.get(name, {}),
                                "error": self._errors.get(name)}
                         for name, s in sorted(self._states.items())},
        }

    def sessions(self) -> Mapping[str, BfdPeerState]:
        """BFD state per peer name (only peers with BFD enabled)."""
        return dict(self._states)

    async def run(self) -> None:
        """Keep the child running while some peer asks for BFD, until cancelled."""
        quick_failures = 0
        try:
            while True:
                self._changed.clear()
                if not self._specs:
                    await self._changed.wait()
                    continue
                started = self._clock()
                planned = await self._run_child()
                self._child_gone("bfd_child_stopped" if planned else "bfd_child_exited")
                if planned:
                    quick_failures = 0
                    continue
                self.restarts += 1
                CHILD_RESTARTS.inc()
                if self._clock() - started >= STABLE_AFTER_S:
                    quick_failures = 0
                delay = restart_delay(quick_failures)
                quick_failures += 1
                LOG.warning("bfd_child_restart_scheduled", reason="bfd_child_exited",
                            delay_s=delay, exit_code=self.last_exit)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
        finally:
            await self._stop_child()
            self._child_gone("bfd_stopped")

    # -- the child ------------------------------------------------------------------------

    async def _run_child(self) -> bool:
        """One life of the child; True when it was stopped on purpose (no sessions)."""
        argv = [*(["ip", "netns", "exec", self._netns] if self._netns else []), *self._argv]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env,
                preexec_fn=_die_with_parent)  # PDEATHSIG: the child must not outlive us
        except OSError as exc:
            LOG.error("bfd_child_start_failed", reason="bfd_child_start_failed",
                      error=repr(exc))
            self.last_exit = -1
            return False
        proc = self._proc
        LOG.info("bfd_child_started", reason="start", pid=proc.pid, sessions=len(self._specs))
        try:
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(self._read_frames(proc))
                tg.create_task(self._read_stderr(proc))
                writer = tg.create_task(self._write_config(proc))
                await reader
                writer.cancel()
        except* (FrameError, ConnectionError) as group:
            LOG.error("bfd_child_protocol_error", reason="bfd_channel_broken",
                      error=repr(group.exceptions[0]))
        planned = not self._specs
        # its stdout is closed: the child is exiting. Let asyncio's watcher reap it
        # first: terminate() polls the process, reaps it itself, and the watcher then
        # reports 255 ("Unknown child process") instead of the real exit code.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await proc.wait()
        await self._stop_child()
        return planned

    async def _write_config(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None  # noqa: S101 - PIPE was requested
        while True:
            self._changed.clear()
            if not self._specs:
                proc.stdin.close()  # the child exits on EOF: no session is wanted
                return
            proc.stdin.write(encode({"t": "config",
                                     "sessions": [s.to_json() for s in self._specs]}))
            await proc.stdin.drain()
            await self._changed.wait()

    async def _read_frames(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None  # noqa: S101 - PIPE was requested
        frames = FrameReader()
        while True:
            data = await proc.stdout.read(65536)
            if not data:
                return
            for message in frames.feed(data):
                self._on_frame(message)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None  # noqa: S101 - PIPE was requested
        while raw := await proc.stderr.readline():
            line = raw.decode("utf-8", "replace").rstrip()
            self._log_tail = [*self._log_tail[-39:], line]
            LOG.warning("bfd_child_output", reason="bfd_child_stderr", line=line[:300])

    async def _stop_child(self) -> None:
        proc, self._proc = self._proc, None
        self._child_pid = None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                async with asyncio.timeout(3):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()  # cancelled while waiting: never leave the child behind
                raise
        self.last_exit = proc.returncode

    # -- frames and table -------------------------------------------------------------------

    def _on_frame(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "hello":
            self._child_pid = int(message["pid"])
            self.sched = str(message.get("sched", ""))
            LOG.info("bfd_child_ready", reason="hello", pid=self._child_pid, sched=self.sched)
        elif kind == "state":
            self._on_state(message)
        elif kind == "stats":
            for name, detail in message.get("sessions", {}).items():
                if name in self._states:
                    self._details[name] = detail
        elif kind == "error":
            name = str(message.get("peer", ""))
            self._errors[name] = str(message.get("error", ""))
            LOG.error("bfd_session_failed", reason=message.get("reason", "bfd_error"),
                      peer=name, error=self._errors[name])

    def _on_state(self, message: dict[str, Any]) -> None:
        name = str(message["peer"])
        old = self._states.get(name)
        if old is None or message.get("removed"):
            return
        new, before, diag = str(message["new"]), str(message["old"]), str(message["diag"])
        self._errors.pop(name, None)
        real = new != before  # the child reports a new session as down -> down
        self._states[name] = replace(old, state=new, since=self._clock(), diag=diag,
                                     remote_diag=str(message["remote_diag"]),
                                     changes=old.changes + (1 if real else 0))
        SESSION_UP.labels(peer=name).set(1 if new == "up" else 0)
        if not real:
            LOG.info("bfd_session_started", reason="bfd_start", peer=name, address=old.address)
            return
        STATE_CHANGES.labels(peer=name).inc()
        if new == "up":
            LOG.info("bfd_session_up", reason="bfd_up", peer=name, address=old.address)
        elif before == "up":
            LOG.warning("bfd_session_down", reason=diag, peer=name, address=old.address,
                        remote_diag=str(message["remote_diag"]))
        else:
            LOG.info(f"bfd_session_{new}", reason=diag, peer=name)
        self._wake(f"bfd_session_{new}")

    def _apply(self, specs: tuple[SessionSpec, ...]) -> None:
        now = self._clock()
        wanted = {s.peer: s for s in specs}
        before = {s.peer: s.identity for s in self._specs}
        for name in set(self._states) - set(wanted):
            del self._states[name]
            self._details.pop(name, None)
            self._errors.pop(name, None)
            with contextlib.suppress(KeyError):
                SESSION_UP.remove(name)
        for name, spec in wanted.items():
            old = self._states.get(name)
            if old is None or before.get(name) != spec.identity:
                old = BfdPeerState(peer=name, address=spec.address, state="not_running",
                                   since=now, diag="none", remote_diag="none", changes=0,
                                   multihop=False, min_tx_ms=0, min_rx_ms=0, multiplier=0)
                SESSION_UP.labels(peer=name).set(0)
            self._states[name] = replace(old, address=spec.address,
                                         multihop=spec.multihop is not None,
                                         min_tx_ms=spec.min_tx_ms, min_rx_ms=spec.min_rx_ms,
                                         multiplier=spec.multiplier)
        self._specs = specs

    def _child_gone(self, reason: str) -> None:
        now = self._clock()
        for name, state in list(self._states.items()):
            if state.state != "not_running":
                self._states[name] = replace(state, state="not_running", since=now,
                                             diag=reason)
                SESSION_UP.labels(peer=name).set(0)
                if state.state == "up":
                    LOG.warning("bfd_session_down", reason=reason, peer=name)
        self._details.clear()

    @staticmethod
    def _plain(state: BfdPeerState, now: float) -> dict[str, Any]:
        return {"address": state.address, "state": state.state,
                "for_s": round(now - state.since, 3), "diag": state.diag,
                "remote_diag": state.remote_diag, "changes": state.changes,
                "multihop": state.multihop, "min_tx_ms": state.min_tx_ms,
                "min_rx_ms": state.min_rx_ms, "multiplier": state.multiplier}
