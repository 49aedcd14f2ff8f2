"""One consistent, indexed snapshot of everything the status document shows.

`speaker status` used to look every VIP's inputs up from scratch: a fresh health
snapshot, a scan of every IPVS destination and a linear search of the config per
VIP, quadratic in the number of services (17.7 s at 2,000 VIPs, issue 20).
:func:`take_index` reads each part once per call and indexes what it read by
service (or address); what only the config decides (labels, the IPVS destination
key of each backend, texts) is computed once per config (:func:`service_views`).
Building the rows is then linear, one dict lookup per backend, and the snapshot stays
consistent however the rows are built: in one go (:func:`speaker.status.status_document`)
or slice by slice while the loop keeps running (:mod:`speaker.api.status_body`).

Everything kept here is immutable or a private copy: the desired state and the
config are frozen objects that a reconcile pass or a reload replaces, never
mutates; the health verdicts, BGP and L2 state are fresh dicts and frozensets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from dataplane.ipvs.model import Dest, DestKey, ServiceKey
from speaker.config import AppConfig
from speaker.config.service import ServiceConfig
from speaker.model import BackendHealth, BgpAnnouncement, IPAddress, L2Vip, VipDecision

if TYPE_CHECKING:
    from speaker.ipvs_stats import ServiceCounters
    from speaker.supervisor import Supervisor

ANNOUNCEMENT_ATTRIBUTES = tuple(f.name for f in fields(BgpAnnouncement)
                                if f.name not in ("prefix", "peers"))
"""The route attributes status shows per announced VIP."""



@dataclass(frozen=True, slots=True)
class ServiceView:
    """What status shows of one service's config, computed once per config."""

    name: str
    address: IPAddress
    vip: str
    announce: str
    group: str
    quorum: dict[str, Any]
    backends: tuple[tuple[str, DestKey | None], ...]
    """(label, IPVS destination on the service's first port or fwmark) per backend."""
    scheduler: str = ""
    forwarding: str = ""


def _service_view(svc: ServiceConfig) -> ServiceView:
    if svc.fwmark is not None:
        key: ServiceKey | None = ServiceKey.of_fwmark(svc.fwmark, svc.vip.version)
    else:
        key = ServiceKey(svc.protocol, svc.vip, svc.ports[0]) if svc.ports else None
    backends = tuple((svc.backend_label(b), None if key is None else
                      DestKey(key, b.address, b.port or key.port)) for b in svc.backends)
    return ServiceView(svc.name, svc.vip, str(svc.vip), svc.announce, svc.group,
                       {"min_healthy": svc.quorum.min_healthy, "below": svc.quorum.below},
                       backends, svc.scheduler, svc.forwarding)


_views: list[tuple[AppConfig, dict[str, ServiceView]]] = []


def service_views(config: AppConfig) -> Mapping[str, ServiceView]:
    """Per service name, its view; kept while `config` is the running config (a reload
    replaces the config object, so the next call recomputes)."""
    if not _views or _views[0][0] is not config:
        _views[:] = [(config, {s.name: _service_view(s) for s in config.services})]
    return _views[0][1]


@dataclass(frozen=True, slots=True)
class StatusIndex:
    """What the parts reported at `now`, indexed for one lookup per VIP and backend."""

    now: float
    decisions: tuple[VipDecision, ...]
    services: Mapping[str, ServiceView]
    health: Mapping[tuple[str, str], BackendHealth]
    dests: Mapping[DestKey, Dest]
    """The desired IPVS destinations (their weights)."""
    counters: Mapping[str, ServiceCounters]
    announced: Mapping[IPAddress, BgpAnnouncement]
    sent_to: tuple[tuple[str, frozenset[BgpAnnouncement]], ...]
    """Per peer name (sorted): what was sent on its established session."""
    peers: tuple[str, ...]
    owned: Mapping[IPAddress, L2Vip]
    yielded: frozenset[str]
    conflicts: Mapping[str, dict[str, Any]]

    def weight(self, key: DestKey | None) -> int | None:
        """Desired IPVS weight of a destination (None: not in IPVS)."""
        dest = None if key is None else self.dests.get(key)
        return None if dest is None else dest.weight

    def sent_to_peers(self, ann: BgpAnnouncement) -> list[str]:
        """Peers the announcement went to (all peers when the speaker cannot say)."""
        return [n for n, anns in self.sent_to if ann in anns] or list(ann.peers or self.peers)


def _strings(value: object) -> frozenset[str]:
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()


def _conflicts(value: object) -> dict[str, dict[str, Any]]:
    rows = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
    return {str(c.get("vip")): c for c in rows}


def take_index(sup: Supervisor,
               health: Mapping[tuple[str, str], BackendHealth] | None = None) -> StatusIndex:
    """Read every part once (O(services + backends)); index what was read. `health`:
    the health checker's snapshot when the caller read it already."""
    desired = sup.reconciler.desired
    parts = sup.built.parts
    bgp, l2 = parts.bgp, parts.l2
    l2_detail = l2.status() if l2 is not None else {}
    return StatusIndex(
        now=time.monotonic(),
        decisions=desired.decisions if desired is not None else (),
        services=service_views(sup.config),
        health=sup.built.health.snapshot() if health is None else health,
        dests=desired.ipvs.dests if desired is not None else {},
        counters=sup.ipvs_stats.latest if sup.ipvs_stats is not None else {},
        announced={a.prefix.network_address: a for a in bgp.announced()} if bgp else {},
        sent_to=tuple(sorted(bgp.announced_to().items())) if bgp else (),
        peers=tuple(sorted(bgp.sessions())) if bgp else (),
        owned={v.address: v for v in l2.owned()} if l2 else {},
        yielded=_strings(l2_detail.get("yielded")),
        conflicts=_conflicts(l2_detail.get("conflicts")),
    )
