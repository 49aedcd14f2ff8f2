"""Checks across the configs of a pair or fleet: do the appliances agree with each other?

`speaker config check A.yaml B.yaml ...` runs these after every file is valid on
its own. Each rule is a pure function of the (file, config) pairs and reports the
file and the dotted path to change. Rules:

- every appliance has its own node.name and node.router_id;
- a VRRP vrid means the same group everywhere: same group name, same VIPs, same
  advertisement interval, and a distinct priority per appliance (equal priorities
  make the owner depend on addresses, and preemption flap-free handover impossible);
- a VIP belongs to the same VRRP group (vrid) on every appliance that serves it;
- one peer plan: a router (bgp.peers[].address) has one ASN across the fleet, and
  each appliance uses its own local_address towards it.

New fleet rules (etcd prefixes, sync settings, ...) go in FLEET_RULES.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from speaker.config.errors import Loc, format_path
from speaker.config.model import AppConfig

Fleet = Sequence[tuple[str, AppConfig]]
"""(file name, config) per appliance, in command-line order."""


@dataclass(frozen=True, slots=True)
class FleetIssue:
    """A disagreement between appliances, blamed on one file and field."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.path}: {self.message}"


def _issue(source: str, loc: Loc, message: str) -> FleetIssue:
    return FleetIssue(source, format_path(loc), message)


def _unique_identity(fleet: Fleet) -> Iterator[FleetIssue]:
    names: dict[str, str] = {}
    router_ids: dict[str, str] = {}
    for source, cfg in fleet:
        name, rid = cfg.node.name, str(cfg.node.router_id)
        if name in names:
            yield _issue(source, ("node", "name"), f"{name!r} is also node.name in "
                         f"{names[name]}; every appliance needs its own name")
        if rid in router_ids:
            yield _issue(source, ("node", "router_id"), f"{rid} is also node.router_id in "
                         f"{router_ids[rid]}; every appliance needs its own router id")
        names.setdefault(name, source)
        router_ids.setdefault(rid, source)


@dataclass(frozen=True, slots=True)
class _Group:
    source: str
    index: int
    name: str
    priority: int
    interval: float
    vips: frozenset[IPv4Address | IPv6Address]


def _vrrp_groups(fleet: Fleet) -> dict[int, list[_Group]]:
    by_vrid: dict[int, list[_Group]] = {}
    for source, cfg in fleet:
        if cfg.election.engine != "vrrp":
            continue
        for gi, g in enumerate(cfg.election.groups):
            if g.vrid is None:
                continue
            vips = frozenset(s.vip for s in cfg.services if s.group == g.name)
            by_vrid.setdefault(g.vrid, []).append(_Group(
                source, gi, g.name, g.priority, cfg.election.advert_interval(g), vips))
    return by_vrid


def _vrrp_agreement(fleet: Fleet) -> Iterator[FleetIssue]:
    for vrid, groups in sorted(_vrrp_groups(fleet).items()):
        first = groups[0]
        priorities: dict[int, str] = {first.priority: first.source}
        for g in groups[1:]:
            at = ("election", "groups", g.index)
            if g.name != first.name:
                yield _issue(g.source, (*at, "name"), f"vrid {vrid} is group {first.name!r} "
                             f"in {first.source} but {g.name!r} here")
            if g.vips != first.vips:
                missing = ", ".join(sorted(str(v) for v in first.vips - g.vips)) or "-"
                extra = ", ".join(sorted(str(v) for v in g.vips - first.vips)) or "-"
                yield _issue(g.source, at, f"vrid {vrid} carries other VIPs than in "
                             f"{first.source} (missing here: {missing}; only here: {extra})")
            if g.interval != first.interval:
                yield _issue(g.source, (*at, "advert_interval"), f"vrid {vrid} advertises "
                             f"every {g.interval:g} s here but every {first.interval:g} s in "
                             f"{first.source}")
            if g.priority in priorities:
                yield _issue(g.source, (*at, "priority"), f"vrid {vrid} has priority "
                             f"{g.priority} here and in {priorities[g.priority]}: give each "
                             "appliance its own")
            priorities.setdefault(g.priority, g.source)


def _vip_groups(fleet: Fleet) -> Iterator[FleetIssue]:
    seen: dict[IPv4Address | IPv6Address, tuple[str, int | None]] = {}
    for source, cfg in fleet:
        if cfg.election.engine != "vrrp":
            continue
        for si, svc in enumerate(cfg.services):
            group = cfg.election.group(svc.group)
            vrid = group.vrid if group is not None else None
            first = seen.setdefault(svc.vip, (source, vrid))
            if first[1] != vrid:
                yield _issue(source, ("services", si, "group"), f"VIP {svc.vip} is in vrid "
                             f"{vrid} here but in vrid {first[1]} in {first[0]}")


def _peer_plan(fleet: Fleet) -> Iterator[FleetIssue]:
    asn_of: dict[IPv4Address | IPv6Address, tuple[int, str]] = {}
    local_of: dict[tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address], str] = {}
    for source, cfg in fleet:
        if cfg.bgp is None:
            continue
        for pi, peer in enumerate(cfg.bgp.peers):
            at = ("bgp", "peers", pi)
            asn, where = asn_of.setdefault(peer.address, (peer.asn, source))
            if asn != peer.asn:
                yield _issue(source, (*at, "asn"), f"router {peer.address} is AS{peer.asn} "
                             f"here but AS{asn} in {where}; one router has one ASN")
            if peer.local_address is not None:
                key = (peer.address, peer.local_address)
                if key in local_of and local_of[key] != source:
                    yield _issue(source, (*at, "local_address"), f"{peer.local_address} "
                                 f"towards {peer.address} is also used by {local_of[key]}: "
                                 "each appliance needs its own address on the peering")
                local_of.setdefault(key, source)


FleetRule = Callable[[Fleet], Iterator[FleetIssue]]
FLEET_RULES: tuple[FleetRule, ...] = (_unique_identity, _vrrp_agreement, _vip_groups,
                                      _peer_plan)
"""Every rule across appliances, in the order their issues are listed."""


def fleet_issues(fleet: Fleet) -> list[FleetIssue]:
    """Every disagreement between the appliances of `fleet` (empty: they agree)."""
    return [issue for rule in FLEET_RULES for issue in rule(fleet)]
