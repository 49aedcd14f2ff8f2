"""apply(ops): carry out a plan through the parts, idempotently.

BGP and L2 take full-state sets, so each of their phases hands the part the
observed set with that phase's changes applied. Address and IPVS calls block
(netlink), so they run in a thread. A failing phase is logged and counted; the
gaining phases after it (announce, own) are skipped so that a VIP is never
announced on top of a forwarder that failed to program; the next pass retries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from dataplane.ipvs.plan import Op as IpvsOp
from speaker.logs import event_log
from speaker.metrics import RECONCILE_ERRORS
from speaker.model import BgpAnnouncement, IPAddress, L2Vip
from speaker.reconcile.plan import Observed, Op, Phase
from speaker.seams import (
    BgpSpeaker,
    ConnSync,
    DnsRecords,
    Forwarder,
    Hooks,
    L2Announcer,
    VipAddresses,
)

LOG = event_log(__name__)
_GAINING = (Phase.ANNOUNCE, Phase.OWN)


@dataclass(slots=True)
class Parts:
    """The parts a plan is applied through (None: not used by this appliance)."""

    addresses: VipAddresses
    forwarder: Forwarder | None = None
    bgp: BgpSpeaker | None = None
    l2: L2Announcer | None = None
    dns: DnsRecords | None = None
    hooks: Hooks | None = None
    sync: ConnSync | None = None


@dataclass(slots=True)
class ApplyResult:
    """Which phases failed, and why."""

    errors: list[tuple[Phase, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every phase succeeded."""
        return not self.errors


async def _apply_bgp(phase: Phase, ops: list[Op], parts: Parts,
                     bgp: set[BgpAnnouncement]) -> None:
    for op in ops:
        ann = cast(BgpAnnouncement, op.payload)
        if phase is Phase.WITHDRAW:
            bgp.discard(ann)
        else:
            if op.replaces is not None:
                bgp.discard(op.replaces)
            bgp.add(ann)
    if parts.bgp is not None:
        await parts.bgp.set(frozenset(bgp))


async def _apply_l2(phase: Phase, ops: list[Op], parts: Parts, l2: set[L2Vip]) -> None:
    for op in ops:
        vip = cast(L2Vip, op.payload)
        if phase is Phase.RELEASE:
            l2.discard(vip)
        else:
            l2.add(vip)
    if parts.l2 is not None:
        await parts.l2.set(frozenset(l2))


async def _apply_phase(phase: Phase, ops: list[Op], parts: Parts,
                       sets: _Sets) -> None:
    if phase in (Phase.WITHDRAW, Phase.ANNOUNCE):
        await _apply_bgp(phase, ops, parts, sets.bgp())
    elif phase in (Phase.RELEASE, Phase.OWN):
        await _apply_l2(phase, ops, parts, sets.l2())
    elif phase is Phase.IPVS and parts.forwarder is not None:
        await asyncio.to_thread(parts.forwarder.apply, [cast(IpvsOp, op.payload) for op in ops])
    elif phase is Phase.DEL_ADDRESS:
        for op in ops:
            await asyncio.to_thread(parts.addresses.remove, cast(IPAddress, op.payload))
    elif phase is Phase.ADD_ADDRESS:
        for op in ops:
            await asyncio.to_thread(parts.addresses.add, cast(IPAddress, op.payload))


class _Sets:
    """The routes and L2 VIPs as observed, copied on first use (a set copy keeps the
    hashes: no per-route Python work, and none at all for a pass that changes neither).
    A withdraw or release names the observed element; an announce that changes a
    route's attributes names the route it replaces."""

    def __init__(self, observed: Observed) -> None:
        self._observed = observed
        self._bgp: set[BgpAnnouncement] | None = None
        self._l2: set[L2Vip] | None = None

    def bgp(self) -> set[BgpAnnouncement]:
        if self._bgp is None:
            self._bgp = set(self._observed.bgp)
        return self._bgp

    def l2(self) -> set[L2Vip]:
        if self._l2 is None:
            self._l2 = set(self._observed.l2)
        return self._l2


async def apply(ops: tuple[Op, ...], observed: Observed, parts: Parts) -> ApplyResult:
    """Run the plan phase by phase; never raises for a part's failure."""
    result = ApplyResult()
    sets = _Sets(observed)
    by_phase: dict[Phase, list[Op]] = {}
    for op in ops:
        by_phase.setdefault(op.phase, []).append(op)
    for phase in Phase:
        phase_ops = by_phase.get(phase, [])
        if not phase_ops:
            continue
        if result.errors and phase in _GAINING:
            LOG.warning("phase_skipped", phase=phase.name.lower(), reason="earlier_phase_failed",
                        ops=len(phase_ops))
            continue
        for op in phase_ops:
            LOG.info(op.action, target=op.target, reason=op.reason)
        try:
            await _apply_phase(phase, phase_ops, parts, sets)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a part failing must not stop the loop
            component = phase.name.lower()
            RECONCILE_ERRORS.labels(component=component).inc()
            LOG.error("apply_failed", phase=component, reason=type(exc).__name__,
                      error=str(exc))
            result.errors.append((phase, f"{type(exc).__name__}: {exc}"))
    return result
