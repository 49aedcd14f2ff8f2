"""plan_dirty(): the plan of a pass between full resyncs, for the changed services only.

Same ops, reasons and order as speaker.reconcile.plan.plan() restricted to the
VIPs and IPVS services of the services a pass recomputed (Change.dirty), so one
backend flap at 10,000 services costs a few lookups instead of comparing every
route, VIP and IPVS dest. Drift elsewhere (someone else's change to the kernel,
a route the speaker lost) is left to the periodic full resync, which plans
everything against a dump. VIP addresses on lo change only with the config, which
always takes a full pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MappingProxyType

from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from dataplane.ipvs.plan import plan_ipvs
from speaker.model import BgpAnnouncement, IPAddress, L2Vip, Reason
from speaker.reconcile.desired import Desired, ServicePart
from speaker.reconcile.incremental import Change
from speaker.reconcile.plan import Observed, Op, Phase, ipvs_reason, ipvs_target


def plan_dirty(desired: Desired, observed: Observed, change: Change,
               parts_of_vip: Callable[[IPAddress], list[ServicePart]],
               owned: Callable[[ServiceKey], bool] = lambda _key: True) -> tuple[Op, ...]:
    """The ops for the services in `change`, sorted like plan()."""
    ops: list[Op] = []
    vips = {part.decision.vip for part in change.after}
    previous: dict[IPAddress, list[ServicePart]] = {}
    for part in change.before:
        previous.setdefault(part.decision.vip, []).append(part)
    for vip in sorted(vips, key=lambda a: (a.version, int(a))):
        now = parts_of_vip(vip)
        before = previous.get(vip, [])
        ops += _bgp_ops(vip, now, before, observed.bgp)
        ops += _l2_ops(vip, now, before, observed.l2)
    ops += _ipvs_ops(desired, observed, change, owned)
    return tuple(sorted(ops, key=lambda o: (o.phase, o.seq, o.target)))


def _first(items: Iterable[object]) -> object:
    return next((x for x in items if x is not None), None)


def _bgp_ops(vip: IPAddress, now: list[ServicePart], before: list[ServicePart],
             have: frozenset[BgpAnnouncement]) -> list[Op]:
    want = _first(p.announcement for p in now)
    assert want is None or isinstance(want, BgpAnnouncement)  # noqa: S101 - typing
    candidates = [p.announcement for p in (*before, *now) if p.announcement is not None]
    observed = next((a for a in candidates if a in have), None)
    reason = now[-1].decision.bgp.value if now else Reason.REMOVED_FROM_CONFIG.value
    if want is not None:
        if want in have:
            return []
        why = reason if now else Reason.ANNOUNCED.value
        return [Op(Phase.ANNOUNCE, 0, str(want.prefix), why, want, observed)]
    if observed is not None:
        return [Op(Phase.WITHDRAW, 0, str(observed.prefix), reason, observed)]
    return []


def _l2_ops(vip: IPAddress, now: list[ServicePart], before: list[ServicePart],
            have: frozenset[L2Vip]) -> list[Op]:
    want = _first(p.l2 for p in now)
    assert want is None or isinstance(want, L2Vip)  # noqa: S101 - typing
    reason = now[-1].decision.l2.value if now else Reason.REMOVED_FROM_CONFIG.value
    ops = [Op(Phase.RELEASE, 0, str(vip), reason, p.l2) for p in before
           if p.l2 is not None and p.l2 != want and p.l2 in have]
    if want is not None and want not in have:
        ops.append(Op(Phase.OWN, 0, str(vip), reason, want))
    return list({op.payload: op for op in ops}.values())  # one release per VIP


def _ipvs_ops(desired: Desired, observed: Observed, change: Change,
              owned: Callable[[ServiceKey], bool]) -> list[Op]:
    keys = {s.key for part in (*change.before, *change.after) for s in part.services}
    dkeys = {d.key for part in (*change.before, *change.after) for d in part.dests}
    want = _table(desired.ipvs, keys, dkeys)
    have = _table(observed.ipvs, keys, dkeys)
    return [Op(Phase.IPVS, seq, ipvs_target(op), ipvs_reason(op), op)
            for seq, op in enumerate(plan_ipvs(want, have, owned))]


def _table(table: IpvsTable, keys: set[ServiceKey], dkeys: set[DestKey]) -> IpvsTable:
    services: dict[ServiceKey, Service] = {k: s for k in keys
                                           if (s := table.services.get(k)) is not None}
    dests: dict[DestKey, Dest] = {k: d for k in dkeys if (d := table.dests.get(k)) is not None}
    return IpvsTable(MappingProxyType(services), MappingProxyType(dests))
