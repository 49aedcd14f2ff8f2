"""Desired state: a pure function of config, backend health, leadership and drains.

For each service it decides, with a stable reason code, whether the VIP is
announced by BGP and/or owned at L2, and what weight each backend gets in
IPVS: its configured weight while up, 0 while it drains (down or drained on
purpose, for `drain_time`, so existing connections finish), then removed.
The VIP address lives on `lo` for every configured service, whoever leads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from ipaddress import ip_network

from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from speaker.config import AppConfig
from speaker.config.bgp import BgpConfig
from speaker.config.service import Backend, ServiceConfig
from speaker.model import (
    BackendHealth,
    BgpAnnouncement,
    IPAddress,
    L2Vip,
    Leadership,
    Reason,
    VipDecision,
)
from speaker.reconcile.inputs import ApplianceHealth, Drains

GRACEFUL_SHUTDOWN = "65535:0"
"""RFC 8326 well-known community: routers lower the preference of the route."""


@dataclass(frozen=True, slots=True)
class Desired:
    """Everything the appliance should make true, with the decisions behind it."""

    decisions: tuple[VipDecision, ...]
    addresses: frozenset[IPAddress]
    bgp: frozenset[BgpAnnouncement]
    l2: frozenset[L2Vip]
    ipvs: IpvsTable


def _backend_state(svc: ServiceConfig, backend: Backend,
                   health: Mapping[tuple[str, str], BackendHealth], drains: Drains,
                   now: float) -> tuple[bool, Reason, float | None]:
    """(counts as healthy, reason, time the backend started draining if it drains)."""
    label = svc.backend_label(backend)
    drained_at = drains.backends.get((svc.name, label))
    if drained_at is not None:
        return False, Reason.BACKEND_DRAINING, drained_at
    verdict = health.get((svc.name, label))
    if svc.health.type == "none" or (verdict is not None and verdict.up):
        return True, Reason.BACKEND_UP, None
    if verdict is None:
        return False, Reason.BACKEND_DOWN, None  # never seen up: nothing to drain
    return False, Reason.BACKEND_DRAINING, verdict.since


def _ipvs_for(svc: ServiceConfig, weights: Mapping[int, int]) -> tuple[list[Service], list[Dest]]:
    """IPVS services (one per port, or one fwmark service) and their dests."""
    if svc.fwmark is not None:
        keys = [ServiceKey.of_fwmark(svc.fwmark, svc.vip.version)]
    else:
        keys = [ServiceKey(svc.protocol, svc.vip, port) for port in svc.ports]
    persistence = svc.persistence
    services = [Service(key, svc.scheduler, frozenset(svc.scheduler_flags),
                        int(persistence.timeout) if persistence else None,
                        persistence.netmask if persistence else None) for key in keys]
    dests = []
    for key in keys:
        for index, weight in sorted(weights.items()):
            backend = svc.backends[index]
            port = backend.port or key.port
            dests.append(Dest(DestKey(key, backend.address, port), weight, svc.forwarding))
    return services, dests


def _announcement(bgp: BgpConfig, svc: ServiceConfig, backup: bool,
                  graceful_shutdown: bool) -> BgpAnnouncement:
    """Merge bgp.defaults with the service's overrides; worsen it for a backup."""
    d, o = bgp.defaults, svc.bgp
    communities = list(o.communities if o.communities is not None else d.communities or [])
    if graceful_shutdown and GRACEFUL_SHUTDOWN not in communities:
        communities.append(GRACEFUL_SHUTDOWN)
    med = o.med if o.med is not None else d.med
    prepend = o.as_path_prepend if o.as_path_prepend is not None else d.as_path_prepend or 0
    if backup:
        med = (med or 0) + bgp.active_backup.med_penalty
        prepend += bgp.active_backup.as_path_prepend
    next_hop = o.next_hop if o.next_hop is not None else d.next_hop
    return BgpAnnouncement(
        prefix=ip_network(svc.vip),
        next_hop=str(next_hop or "self"),
        communities=tuple(communities),
        large_communities=tuple(o.large_communities if o.large_communities is not None
                                else d.large_communities or ()),
        med=med,
        local_pref=o.local_pref if o.local_pref is not None else d.local_pref,
        as_path_prepend=prepend,
    )


_HEALTHY_APPLIANCE = ApplianceHealth()


def _backend_weights(svc: ServiceConfig, health: Mapping[tuple[str, str], BackendHealth],
                     drains: Drains, now: float
                     ) -> tuple[dict[int, int], dict[str, Reason], int, bool]:
    """(IPVS weight per backend index, reason per label, healthy count, fail-open)."""
    weights: dict[int, int] = {}
    reasons: dict[str, Reason] = {}
    healthy = 0
    for index, backend in enumerate(svc.backends):
        up, reason, drain_start = _backend_state(svc, backend, health, drains, now)
        healthy += up
        if up:
            weights[index] = backend.weight
        elif drain_start is not None and now - drain_start < svc.drain_time:
            weights[index] = 0
        elif reason is Reason.BACKEND_DRAINING:
            reason = Reason.BACKEND_REMOVED
        reasons[svc.backend_label(backend)] = reason
    fail_open = healthy < svc.quorum.min_healthy and svc.quorum.below == "fail-open"
    if fail_open:  # keep every backend that is not drained on purpose
        for index, backend in enumerate(svc.backends):
            if (svc.name, svc.backend_label(backend)) not in drains.backends:
                weights[index] = backend.weight
    return weights, reasons, healthy, fail_open


@dataclass(frozen=True, slots=True)
class ServicePart:
    """What one service contributes to the desired state (one pass, one service)."""

    decision: VipDecision
    announcement: BgpAnnouncement | None
    l2: L2Vip | None
    services: tuple[Service, ...]
    dests: tuple[Dest, ...]


def service_part(config: AppConfig, svc: ServiceConfig,
                 health: Mapping[tuple[str, str], BackendHealth],
                 leadership: Mapping[str, Leadership], drains: Drains, now: float,
                 appliance: ApplianceHealth, shutting_down: bool,
                 interfaces: tuple[str, ...]) -> ServicePart:
    """The desired state of one service. Pure."""
    weights, reasons, healthy, fail_open = _backend_weights(svc, health, drains, now)
    lead = leadership.get(svc.group)
    leader = lead is not None and lead.leader
    service_reason = _service_reason(svc, healthy, fail_open, drains, shutting_down)
    bgp_reason = Reason.NOT_ANNOUNCED_HERE
    announcement = None
    if svc.announce in ("bgp", "both") and config.bgp is not None:
        bgp_reason, announcement = _bgp_decision(config, svc, service_reason, leader,
                                                 appliance, drains, now)
    l2_reason = Reason.NOT_ANNOUNCED_HERE
    l2 = None
    if svc.announce in ("l2", "both"):
        l2_reason = service_reason if leader else Reason.NOT_LEADER
        if l2_reason in (Reason.ANNOUNCED, Reason.FAIL_OPEN):
            l2 = L2Vip(svc.vip, interfaces, svc.group)
    services, dests = _ipvs_for(svc, weights)
    return ServicePart(VipDecision(svc.name, svc.vip, bgp_reason, l2_reason, healthy,
                                   len(svc.backends), leader, fail_open, reasons),
                       announcement, l2, tuple(services), tuple(dests))


def next_change(config: AppConfig, svc: ServiceConfig,
                health: Mapping[tuple[str, str], BackendHealth], drains: Drains,
                now: float) -> float | None:
    """The earliest later time at which the service's part changes with no new input:
    a backend's drain_time running out, or the graceful-shutdown window closing."""
    starts = [drains.backends.get((svc.name, label)) for label in
              (svc.backend_label(b) for b in svc.backends)]
    for i, backend in enumerate(svc.backends):
        if starts[i] is None:
            verdict = health.get((svc.name, svc.backend_label(backend)))
            if verdict is not None and not verdict.up:
                starts[i] = verdict.since
    ends = [t + svc.drain_time for t in starts if t is not None and t + svc.drain_time > now]
    if config.bgp is not None and config.bgp.graceful_shutdown:
        ends += [t + config.bgp.graceful_shutdown_time
                 for t in (drains.appliance, drains.services.get(svc.name))
                 if t is not None and t + config.bgp.graceful_shutdown_time > now]
    return min(ends) if ends else None


def client_interfaces(config: AppConfig) -> tuple[str, ...]:
    """The interfaces an L2 VIP is answered on (sorted)."""
    return tuple(sorted(config.node.client_interfaces()))


def assemble(config: AppConfig, parts: Iterable[ServicePart]) -> Desired:
    """The desired state made of every service's part."""
    decisions: list[VipDecision] = []
    bgp: set[BgpAnnouncement] = set()
    l2: set[L2Vip] = set()
    services: list[Service] = []
    dests: list[Dest] = []
    for part in parts:
        decisions.append(part.decision)
        if part.announcement is not None:
            bgp.add(part.announcement)
        if part.l2 is not None:
            l2.add(part.l2)
        services += part.services
        dests += part.dests
    return Desired(tuple(decisions), frozenset(s.vip for s in config.services),
                   frozenset(bgp), frozenset(l2), IpvsTable.of(services, dests))


def compute_desired(config: AppConfig, health: Mapping[tuple[str, str], BackendHealth],
                    leadership: Mapping[str, Leadership], drains: Drains, now: float, *,
                    appliance: ApplianceHealth = _HEALTHY_APPLIANCE,
                    shutting_down: bool = False) -> Desired:
    """The whole desired state. Pure: same inputs, same output.

    speaker.reconcile.incremental computes the same thing pass after pass while
    looking only at the services whose inputs changed."""
    interfaces = client_interfaces(config)
    return assemble(config, (service_part(config, svc, health, leadership, drains, now,
                                          appliance, shutting_down, interfaces)
                             for svc in config.services))


def _bgp_decision(config: AppConfig, svc: ServiceConfig, reason: Reason, leader: bool,
                  appliance: ApplianceHealth, drains: Drains, now: float
                  ) -> tuple[Reason, BgpAnnouncement | None]:
    """Whether and how this appliance announces the service's VIP by BGP."""
    assert config.bgp is not None  # noqa: S101 - caller checked
    if reason in (Reason.ANNOUNCED, Reason.FAIL_OPEN) and not appliance.healthy:
        return Reason.APPLIANCE_UNHEALTHY, None
    gshut = reason is Reason.DRAINED and _in_gshut_window(config, svc, drains, now)
    if reason not in (Reason.ANNOUNCED, Reason.FAIL_OPEN) and not gshut:
        return reason, None
    backup = (svc.bgp.mode or config.bgp.mode) == "active-backup" and not leader
    if backup and reason is Reason.ANNOUNCED:
        reason = Reason.BACKUP_ROUTE
    return reason, _announcement(config.bgp, svc, backup, gshut)


def _service_reason(svc: ServiceConfig, healthy: int, fail_open: bool, drains: Drains,
                    shutting_down: bool) -> Reason:
    """Why the service's VIP is (not) announced, before mode and leadership."""
    if shutting_down:
        return Reason.SHUTTING_DOWN
    if drains.appliance is not None or svc.name in drains.services:
        return Reason.DRAINED
    if healthy >= svc.quorum.min_healthy and healthy > 0:
        return Reason.ANNOUNCED
    if fail_open:
        return Reason.FAIL_OPEN
    if healthy >= svc.quorum.min_healthy:  # min_healthy 0 and nothing healthy
        return Reason.ANNOUNCED
    return Reason.NO_HEALTHY_BACKENDS if healthy == 0 else Reason.BELOW_QUORUM


def _in_gshut_window(config: AppConfig, svc: ServiceConfig, drains: Drains, now: float) -> bool:
    """A planned drain first re-announces with 65535:0 for graceful_shutdown_time."""
    if config.bgp is None or not config.bgp.graceful_shutdown:
        return False
    starts = [t for t in (drains.appliance, drains.services.get(svc.name)) if t is not None]
    return bool(starts) and now - min(starts) < config.bgp.graceful_shutdown_time


@dataclass(frozen=True, slots=True)
class Leaving:
    """IPVS services of a service removed (or moved) by a reload, kept with every dest at
    weight 0 until `until` so that established connections finish (its drain_time)."""

    address: IPAddress
    services: tuple[Service, ...]
    dests: tuple[Dest, ...]
    until: float


def leaving_services(old: AppConfig, new: AppConfig, now: float) -> tuple[Leaving, ...]:
    """The IPVS services `old` has and `new` does not, to drain for their drain_time."""
    kept: set[ServiceKey] = set()
    for svc in new.services:
        kept.update(s.key for s in _ipvs_for(svc, {})[0])
    out = []
    for svc in old.services:
        services, dests = _ipvs_for(svc, dict.fromkeys(range(len(svc.backends)), 0))
        gone = tuple(s for s in services if s.key not in kept)
        if gone and svc.drain_time > 0:
            keys = {s.key for s in gone}
            out.append(Leaving(svc.vip, gone, tuple(d for d in dests if d.key.service in keys),
                               now + svc.drain_time))
    return tuple(out)


def with_leaving(desired: Desired, leaving: tuple[Leaving, ...], now: float) -> Desired:
    """`desired` plus the leaving services still draining (and their VIP on lo)."""
    live = [x for x in leaving if x.until > now]
    if not live:
        return desired
    services = dict(desired.ipvs.services)
    dests = dict(desired.ipvs.dests)
    addresses = set(desired.addresses)
    for x in live:
        fresh = [s for s in x.services if s.key not in services]
        if not fresh:
            continue
        keys = {s.key for s in fresh}
        services.update((s.key, s) for s in fresh)
        dests.update((d.key, d) for d in x.dests if d.key.service in keys)
        addresses.add(x.address)
    return replace(desired, addresses=frozenset(addresses),
                   ipvs=IpvsTable.of(services.values(), dests.values()))
