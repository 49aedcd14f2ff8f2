"""The ``Forwarder`` seam over the real kernel: observe, ownership, apply, record.

:class:`IpvsForwarder` is what the reconciler holds. It combines the kernel
access of :class:`~dataplane.ipvs.kernel.IpvsKernel` with the ownership rule of
:class:`~dataplane.ipvs.ownership.Ownership` and keeps the ownership state file
up to date: a service edge-speaker added is recorded before the next plan, a
service it deleted is forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from dataplane.ipvs.kernel import ApplyResult, IpvsError, IpvsKernel
from dataplane.ipvs.model import IpvsStats, IpvsTable, ServiceKey
from dataplane.ipvs.ownership import Ownership, read_state_file, write_state_file
from dataplane.ipvs.plan import AddService, DelService, Op, apply_to_table, plan_ipvs


class IpvsTableAccess(Protocol):
    """What the forwarder needs of a kernel: the real one or the in-memory fake."""

    def observe(self) -> IpvsTable: ...
    def snapshot(self) -> tuple[IpvsTable, IpvsStats]: ...
    def apply(self, ops: Sequence[Op]) -> ApplyResult: ...
    def close(self) -> None: ...


class IpvsForwarder:
    """Implements ``speaker.seams.Forwarder``. Blocking: call from a thread."""

    def __init__(self, ownership: Ownership, state_file: Path | None = None,
                 kernel: IpvsTableAccess | None = None) -> None:
        self.state_file = state_file
        recorded = read_state_file(state_file) if state_file else frozenset()
        self.ownership = Ownership(ownership.vip_ranges, ownership.fwmarks,
                                   ownership.recorded | recorded)
        self.kernel: IpvsTableAccess = kernel or IpvsKernel()
        self._known: IpvsTable | None = None

    def observe(self) -> IpvsTable:
        """Dump the kernel's table (the periodic resync's view)."""
        self._known = self.kernel.observe()
        return self._known

    def known(self) -> IpvsTable:
        """The table as last observed plus every op applied since, without a dump.

        An event-driven reconcile pass can plan against this (one change then costs
        ~0.1 ms of netlink instead of a dump); the periodic resync calls
        :meth:`observe` to heal what someone else changed behind our back.
        """
        return self._known if self._known is not None else self.observe()

    def snapshot(self) -> tuple[IpvsTable, IpvsStats]:
        return self.kernel.snapshot()

    def owned(self, key: ServiceKey) -> bool:
        return self.ownership(key)

    def apply(self, ops: Sequence[Op]) -> None:
        """Execute ops; raises :class:`IpvsError` listing the ops that really failed."""
        result = self.apply_result(ops)
        if result.failures:
            raise IpvsError(f"{len(result.failures)} of {len(ops)} IPVS ops failed",
                            result.failures)

    def apply_result(self, ops: Sequence[Op]) -> ApplyResult:
        added = {op.service.key for op in ops if isinstance(op, AddService)}
        deleted = {op.key for op in ops if isinstance(op, DelService)}
        if added - self.ownership.recorded:
            # Record before programming: a crash in between must not orphan them.
            self._record(self.ownership.recorded | added)
        result = self.kernel.apply(ops)
        if result.failures:
            self._known = None  # unsure what the kernel holds now: dump next time
        elif self._known is not None:
            self._known = apply_to_table(self._known, ops)
        if deleted & self.ownership.recorded:
            failed = {op.key for op, _ in result.failures if isinstance(op, DelService)}
            self._record(self.ownership.recorded - (deleted - failed))
        return result

    def sync(self, desired: IpvsTable) -> ApplyResult:
        """Dump, plan and apply in one call (benchmarks, tests, one-shot tools)."""
        return self.apply_result(plan_ipvs(desired, self.observe(), self.owned))

    def _record(self, keys: frozenset[ServiceKey]) -> None:
        self.ownership = Ownership(self.ownership.vip_ranges, self.ownership.fwmarks, keys)
        if self.state_file is not None:
            write_state_file(self.state_file, keys)

    def close(self) -> None:
        self.kernel.close()
