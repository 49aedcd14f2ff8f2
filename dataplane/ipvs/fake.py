"""An in-memory IPVS kernel with the real one's error semantics, for unit tests.

:class:`FakeIpvsKernel` answers ``observe``/``apply``/``snapshot`` like
:class:`dataplane.ipvs.kernel.IpvsKernel`: adding an existing entry is EEXIST,
editing or deleting a missing one ENOENT/ESRCH, an unknown scheduler ENOENT, a
dest of a missing service ESRCH; the same benign-error follow-ups apply. It can
stand in for the kernel inside :class:`dataplane.ipvs.forwarder.IpvsForwarder`,
so the reconciler is unit-tested without IPVS.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence

from dataplane.ipvs.kernel import ApplyResult, apply_in_rounds
from dataplane.ipvs.model import (
    SCHEDULERS,
    Dest,
    DestKey,
    IpvsStats,
    IpvsTable,
    Service,
    ServiceKey,
)
from dataplane.ipvs.plan import AddDest, AddService, DelService, EditDest, EditService, Op


class FakeIpvsKernel:
    """A dict-backed IPVS table; ``calls`` counts apply() batches, ``ops`` every op sent."""

    def __init__(self, table: IpvsTable | None = None) -> None:
        self.services: dict[ServiceKey, Service] = dict(table.services) if table else {}
        self.dests: dict[DestKey, Dest] = dict(table.dests) if table else {}
        self.calls = 0
        self.ops: list[Op] = []

    def observe(self) -> IpvsTable:
        return IpvsTable.of(self.services.values(), self.dests.values())

    def snapshot(self) -> tuple[IpvsTable, IpvsStats]:
        return self.observe(), IpvsStats()

    def close(self) -> None:
        pass

    def _execute(self, op: Op) -> int:
        """Perform one op; the errno the kernel would report (0: done)."""
        self.ops.append(op)
        if isinstance(op, AddService | EditService):
            return self._put_service(op.service, must_exist=isinstance(op, EditService))
        if isinstance(op, DelService):
            if self.services.pop(op.key, None) is None:
                return errno.ESRCH
            for key in [k for k in self.dests if k.service == op.key]:
                del self.dests[key]
            return 0
        if isinstance(op, AddDest | EditDest):
            return self._put_dest(op.dest, must_exist=isinstance(op, EditDest))
        if op.key.service not in self.services:
            return errno.ESRCH
        return 0 if self.dests.pop(op.key, None) else errno.ENOENT

    def _put_service(self, svc: Service, must_exist: bool) -> int:
        if (svc.key in self.services) != must_exist:
            return errno.ESRCH if must_exist else errno.EEXIST
        if svc.scheduler not in SCHEDULERS:
            return errno.ENOENT
        self.services[svc.key] = svc
        return 0

    def _put_dest(self, dest: Dest, must_exist: bool) -> int:
        if dest.key.service not in self.services:
            return errno.ESRCH
        if (dest.key in self.dests) != must_exist:
            return errno.ENOENT if must_exist else errno.EEXIST
        self.dests[dest.key] = dest
        return 0

    def apply(self, ops: Sequence[Op]) -> ApplyResult:
        self.calls += 1
        return apply_in_rounds(
            ops, lambda batch: [(op, err) for op in batch if (err := self._execute(op))])
