"""plan(desired, observed): the sorted operations that make observed equal desired.

Pure. Ops are ordered by phase so that a VIP is gained bottom-up (program
IPVS, add the address, announce by BGP, answer ARP/NDP) and lost top-down
(withdraw, stop answering, drain, remove). A route whose attributes change is
re-announced in place (never withdrawn first), so there is no gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from dataplane.ipvs.model import IpvsTable, ServiceKey
from dataplane.ipvs.plan import (
    AddDest,
    AddService,
    DelDest,
    DelService,
    EditDest,
    EditService,
    plan_ipvs,
)
from dataplane.ipvs.plan import Op as IpvsOp
from speaker.model import BgpAnnouncement, IPAddress, L2Vip, Reason
from speaker.reconcile.desired import Desired


class Phase(IntEnum):
    """Execution order of operations within one reconcile pass."""

    WITHDRAW = 0
    RELEASE = 1
    IPVS = 2
    DEL_ADDRESS = 3
    ADD_ADDRESS = 4
    ANNOUNCE = 5
    OWN = 6


@dataclass(frozen=True, slots=True)
class Observed:
    """What the parts report as true now."""

    addresses: frozenset[IPAddress] = frozenset()
    bgp: frozenset[BgpAnnouncement] = frozenset()
    l2: frozenset[L2Vip] = frozenset()
    ipvs: IpvsTable = field(default_factory=IpvsTable)


@dataclass(frozen=True, slots=True)
class Op:
    """One step of a plan, with the reason code that status and logs show."""

    phase: Phase
    seq: int
    target: str
    reason: str
    payload: BgpAnnouncement | L2Vip | IPAddress | IpvsOp = field(compare=False)
    replaces: BgpAnnouncement | None = field(default=None, compare=False)
    """An announce that changes a route's attributes: the observed route it replaces."""

    @property
    def action(self) -> str:
        """Short verb for logs: withdraw, release, ipvs_add_dest, announce, ..."""
        if self.phase is Phase.IPVS:
            return "ipvs_" + _IPVS_VERBS[type(self.payload)]
        return _VERBS[self.phase]


_VERBS = {Phase.WITHDRAW: "withdraw", Phase.RELEASE: "release", Phase.DEL_ADDRESS: "del_address",
          Phase.ADD_ADDRESS: "add_address", Phase.ANNOUNCE: "announce", Phase.OWN: "own"}
_IPVS_VERBS: dict[type, str] = {AddService: "add_service", EditService: "edit_service",
                                AddDest: "add_dest", EditDest: "edit_dest",
                                DelDest: "del_dest", DelService: "del_service"}


def _vip_reasons(desired: Desired) -> dict[str, str]:
    out: dict[str, str] = {}
    for d in desired.decisions:
        out[f"bgp:{d.vip}"] = d.bgp.value
        out[f"l2:{d.vip}"] = d.l2.value
    return out


def ipvs_reason(op: IpvsOp) -> str:
    if isinstance(op, AddDest):
        return (Reason.BACKEND_DRAINING if op.dest.weight == 0 else Reason.BACKEND_UP).value
    if isinstance(op, EditDest):
        return (Reason.BACKEND_DRAINING if op.dest.weight == 0
                else Reason.CONFIG_CHANGED).value
    if isinstance(op, DelDest):
        return Reason.BACKEND_REMOVED.value
    if isinstance(op, DelService):
        return Reason.REMOVED_FROM_CONFIG.value
    return Reason.CONFIG_CHANGED.value


def ipvs_target(op: IpvsOp) -> str:
    if isinstance(op, AddService | EditService):
        return str(op.service.key)
    if isinstance(op, AddDest | EditDest):
        return str(op.dest.key)
    return str(op.key)


def plan(desired: Desired, observed: Observed,
         owned: Callable[[ServiceKey], bool] = lambda _key: True) -> tuple[Op, ...]:
    """Every operation needed, sorted by (phase, sequence, target)."""
    reasons = _vip_reasons(desired)
    ops: list[Op] = []
    want_bgp = {a.prefix: a for a in desired.bgp}
    have_bgp = {a.prefix: a for a in observed.bgp}
    for prefix, ann in have_bgp.items():
        if prefix not in want_bgp:
            why = reasons.get(f"bgp:{prefix.network_address}", Reason.REMOVED_FROM_CONFIG.value)
            ops.append(Op(Phase.WITHDRAW, 0, str(prefix), why, ann))
    for prefix, ann in want_bgp.items():
        if have_bgp.get(prefix) != ann:
            why = reasons.get(f"bgp:{prefix.network_address}", Reason.ANNOUNCED.value)
            ops.append(Op(Phase.ANNOUNCE, 0, str(prefix), why, ann, have_bgp.get(prefix)))
    want_l2 = {v.address: v for v in desired.l2}
    have_l2 = {v.address: v for v in observed.l2}
    ops.extend(Op(Phase.RELEASE, 0, str(addr), reasons.get(f"l2:{addr}",
                                                             Reason.REMOVED_FROM_CONFIG.value), vip)
               for addr, vip in have_l2.items() if want_l2.get(addr) != vip)
    ops.extend(Op(Phase.OWN, 0, str(addr), reasons.get(f"l2:{addr}", Reason.ANNOUNCED.value),
                  vip) for addr, vip in want_l2.items() if have_l2.get(addr) != vip)
    ops.extend(Op(Phase.DEL_ADDRESS, 0, str(a), Reason.REMOVED_FROM_CONFIG.value, a)
               for a in observed.addresses - desired.addresses)
    ops.extend(Op(Phase.ADD_ADDRESS, 0, str(a), Reason.CONFIG_CHANGED.value, a)
               for a in desired.addresses - observed.addresses)
    ops.extend(Op(Phase.IPVS, seq, ipvs_target(op), ipvs_reason(op), op)
               for seq, op in enumerate(plan_ipvs(desired.ipvs, observed.ipvs, owned)))
    return tuple(sorted(ops, key=lambda o: (o.phase, o.seq, o.target)))


def payloads(ops: Iterable[Op], phase: Phase) -> list[object]:
    """The payloads of one phase, in plan order."""
    return [op.payload for op in ops if op.phase is phase]
