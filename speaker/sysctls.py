"""The sysctl guard: applies the one sysctl table at start, checks it on every resync.

A part like the others (run/reconfigure/status). Which entries apply follows from
the config (`speaker.parts.sysctl_modes`: forwarding methods in use, `l2`, `ipv6`;
per-interface ARP/NDP entries for every client interface and its lower devices).
With `dataplane.manage_sysctls` on, a mismatch is written at start, after a reload
and whenever a check finds one; off, it is only reported. Mismatches show in
`speaker status` (components.SysctlGuard, and the health verdict) and as
`speaker_sysctl_mismatch{name}` (1 per wrong entry) plus `speaker_sysctl_mismatches`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from prometheus_client import Gauge

from dataplane import sysctl
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.metrics import REGISTRY
from speaker.parts import sysctl_modes
from speaker.seams import Wake

LOG = event_log(__name__)
CHECK_INTERVAL_S = 2.0
"""Matches the reconciler's resync interval."""

MISMATCH = Gauge("speaker_sysctl_mismatch",
                 "1 for each required sysctl whose value is not the table's", ["name"],
                 registry=REGISTRY)
MISMATCHES = Gauge("speaker_sysctl_mismatches",
                   "Required sysctls whose value is not the table's", registry=REGISTRY)


class SysctlGuard:
    """Keeps the kernel's sysctls at the table's values (or reports that they are not)."""

    def __init__(self, config: AppConfig, wake: Wake, *, root: Path = Path("/proc/sys"),
                 sysfs: Path = Path("/sys/class/net"),
                 interval: float = CHECK_INTERVAL_S) -> None:
        self._config = config
        self._wake = wake
        self._root = root
        self._sysfs = sysfs
        self.interval = interval
        self.mismatches: tuple[sysctl.Mismatch, ...] = ()
        self._exported: set[str] = set()

    def _interfaces(self) -> list[str]:
        return sysctl.with_lower_devices(self._config.node.client_interfaces(), self._sysfs)

    def check_once(self) -> tuple[sysctl.Mismatch, ...]:
        """Check (and, if managed, fix) the table once; export and return what is wrong."""
        modes = sysctl_modes(self._config)
        found = sysctl.check(modes, self._root, self._interfaces())
        manage = self._config.dataplane.manage_sysctls
        left = sysctl.fix(found, manage, self._root) if found else ()
        for fixed in {m.sysctl.name for m in found} - {m.sysctl.name for m in left}:
            LOG.info("sysctl_set", reason="sysctl_table", name=fixed)
        before = {m.sysctl.name for m in self.mismatches}
        for m in left:
            if m.sysctl.name not in before:
                LOG.warning("sysctl_mismatch", reason="sysctl_mismatch",
                            name=m.sysctl.display_name(), have=m.actual, want=m.sysctl.value,
                            managed=manage)
        self.mismatches = left
        self._export()
        if {m.sysctl.name for m in left} != before:
            self._wake("sysctl_changed")
        return left

    def _export(self) -> None:
        names = {m.sysctl.display_name() for m in self.mismatches}
        for name in names:
            MISMATCH.labels(name).set(1)
        for name in self._exported - names:
            with contextlib.suppress(KeyError):
                MISMATCH.remove(name)
        self._exported = names
        MISMATCHES.set(len(names))

    async def run(self) -> None:
        """Apply at start, then check every `interval` until cancelled."""
        try:
            while True:
                await asyncio.to_thread(self.check_once)
                await asyncio.sleep(self.interval)
        finally:
            for name in self._exported:
                with contextlib.suppress(KeyError):
                    MISMATCH.remove(name)
            self._exported = set()

    def reconfigure(self, config: AppConfig) -> None:
        """New modes or interfaces: the next check (at once) covers them."""
        self._config = config
        self.check_once()

    def status(self) -> dict[str, object]:
        """Managed or not, and every mismatch (name, have, want, why)."""
        return {"managed": self._config.dataplane.manage_sysctls,
                "mismatches": [{"name": m.sysctl.display_name(), "have": m.actual,
                                "want": m.sysctl.value, "reason": m.sysctl.reason}
                               for m in self.mismatches]}
