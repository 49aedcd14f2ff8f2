"""Rule: services fit together and with the sections they use (names, ports, groups,
announcement)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from speaker.config.errors import CrossFieldError

if TYPE_CHECKING:
    from speaker.config.model import AppConfig


def check(config: AppConfig) -> Iterator[CrossFieldError]:
    """Unique names and VIP:port pairs, known groups, announce modes that can work."""
    groups = {g.name for g in config.election.groups}
    seen_names: dict[str, int] = {}
    seen_ports: dict[tuple[str, str, int], str] = {}
    bgp = config.bgp
    v6_peer = bgp is not None and any("ipv6-unicast" in p.families for p in bgp.peers)
    v4_peer = bgp is not None and any("ipv4-unicast" in p.families for p in bgp.peers)
    l2_ok = bool(config.node.client_interfaces())
    for si, svc in enumerate(config.services):
        at = ("services", si)
        if svc.name in seen_names:
            yield CrossFieldError((*at, "name"), f"service name {svc.name!r} is already used "
                                  f"by services[{seen_names[svc.name]}]")
        seen_names.setdefault(svc.name, si)
        for port in svc.ports:
            key = (str(svc.vip), svc.protocol, port)
            if key in seen_ports:
                yield CrossFieldError((*at, "ports"), f"{svc.vip} {svc.protocol}/{port} is "
                                      f"already served by {seen_ports[key]}")
            seen_ports.setdefault(key, svc.name)
        if svc.group not in groups:
            yield CrossFieldError((*at, "group"),
                                  f"group {svc.group!r} is not defined in election.groups")
        if svc.announce in ("bgp", "both"):
            if bgp is None:
                yield CrossFieldError((*at, "announce"),
                                      f"announce {svc.announce!r} needs a bgp section")
            elif (svc.vip.version == 6 and not v6_peer) or (svc.vip.version == 4
                                                            and not v4_peer):
                yield CrossFieldError((*at, "vip"), "no BGP peer carries the "
                                      f"ipv{svc.vip.version}-unicast family")
            elif bgp.pools and not any(svc.vip.version == p.version and svc.vip in p
                                       for p in bgp.pools):
                yield CrossFieldError((*at, "vip"), f"{svc.vip} is outside every bgp.pools entry")
        if svc.announce in ("l2", "both") and not l2_ok:
            yield CrossFieldError((*at, "announce"), "L2 announcement needs a node interface "
                                  "with role client or both")
