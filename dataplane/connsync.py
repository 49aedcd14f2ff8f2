"""Connection-sync edge: run the wanted IPVS sync daemons and kernel settings.

Holds :class:`~dataplane.ipvs.syncd.SyncDaemonKernel` and the sysctl table of
:mod:`dataplane.sysctl`. The reconciler hands it the full wanted state every pass
(:class:`ConnSyncState`); it talks to the kernel only when that state changed or
when asked to verify (the periodic resync), so an event-driven pass costs nothing.
Blocking: call from a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataplane import sysctl
from dataplane.ipvs.syncd import DaemonOp, SyncDaemon, SyncDaemonKernel

SLOPPY: dict[sysctl.Mode, str] = {"sloppy_tcp": "net.ipv4.vs.sloppy_tcp",
                                  "sloppy_sctp": "net.ipv4.vs.sloppy_sctp"}


@dataclass(frozen=True, slots=True)
class ConnSyncState:
    """Everything connection survival needs from the kernel, as one value."""

    daemons: frozenset[SyncDaemon] = frozenset()
    modes: frozenset[sysctl.Mode] = frozenset()
    manage_sysctls: bool = True


def wanted_sysctls(state: ConnSyncState) -> tuple[sysctl.Sysctl, ...]:
    """The table's entries for the modes in use, plus sloppy_* off when not wanted
    (a reload that turns them off must take effect)."""
    out = list(sysctl.required(state.modes))
    out += [sysctl.Sysctl(name, "0", frozenset({mode}), f"{mode} not configured")
            for mode, name in SLOPPY.items() if mode not in state.modes]
    return tuple(out)


class KernelConnSync:
    """Implements ``speaker.seams.ConnSync`` on the real kernel."""

    def __init__(self, kernel: SyncDaemonKernel | None = None,
                 proc: Path = Path("/proc/sys")) -> None:
        self.kernel = kernel or SyncDaemonKernel()
        self.proc = proc
        self._applied: ConnSyncState | None = None
        self.last_ops: tuple[DaemonOp, ...] = ()
        self.mismatches: tuple[str, ...] = ()

    def set(self, state: ConnSyncState, verify: bool = False) -> tuple[DaemonOp, ...]:
        """Make the kernel match ``state``; returns the daemon ops taken.

        Sysctls go first: the master reads ``sync_version`` when it starts.
        Raises :class:`~dataplane.ipvs.syncd.SyncDaemonError` if the kernel refuses.
        """
        if state == self._applied and not verify:
            return ()
        self._applied = None  # unknown until this call succeeds
        wanted = wanted_sysctls(state)
        bad = [sysctl.Mismatch(s, sysctl.read(s, self.proc)) for s in wanted
               if sysctl.read(s, self.proc) != s.value]
        left = sysctl.fix(bad, state.manage_sysctls, self.proc)
        self.mismatches = tuple(str(m) for m in left)
        self.last_ops = self.kernel.set(state.daemons)
        self._applied = state
        return self.last_ops

    def running(self) -> tuple[SyncDaemon, ...]:
        return self.kernel.observe()

    def close(self) -> None:
        self.kernel.close()
