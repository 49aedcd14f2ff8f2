"""The neutral router-side model: what a router needs to peer with the appliances.

Vendor renderers read only these frozen values, never the appliance config, so
every vendor sees the same decisions (prefix sets, limits, timers, knobs). The
same model is printed by `speaker router-config --json` for people who template
their own router configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Literal

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Family = Literal["ipv4-unicast", "ipv6-unicast"]
FAMILIES: tuple[Family, ...] = ("ipv4-unicast", "ipv6-unicast")

PASSWORD_PLACEHOLDER = "REPLACE-WITH-TCP-MD5-PASSWORD"  # noqa: S105 - a placeholder, not a key
"""Written instead of a secret with `--no-secrets`; no router takes it for a real key."""


@dataclass(frozen=True, slots=True)
class Source:
    """One appliance config that fed the model."""

    appliance: str
    """node.name of the appliance."""
    path: str
    """The config file as named on the command line."""


@dataclass(frozen=True, slots=True)
class ImportPolicy:
    """Prefixes a router accepts from a set of appliances: exact host routes only.

    Each entry is a pool (or a single VIP); the router accepts any /32 (IPv4) or
    /128 (IPv6) inside it and nothing else.
    """

    name: str
    """Identifier used in the router config, e.g. EDGE-SPEAKER-IN or EDGE-SPEAKER-IN-2."""
    ipv4: tuple[IPv4Network, ...]
    """IPv4 pools (or single VIPs as /32), sorted."""
    ipv6: tuple[IPv6Network, ...]
    """IPv6 pools (or single VIPs as /128), sorted."""
    from_pools: bool
    """True: taken from bgp.pools; False: one exact entry per BGP-announced VIP."""

    def prefixes(self, family: Family) -> tuple[IPNetwork, ...]:
        """Entries of one address family."""
        return self.ipv4 if family == "ipv4-unicast" else self.ipv6


@dataclass(frozen=True, slots=True)
class Bfd:
    """BFD on one session, from the router's side: the mirror of what the appliance
    runs (bgp.peers[].bfd), so both ends negotiate exactly the configured timers."""

    transmit_ms: int
    """The router's desired transmit interval = the appliance's min_rx."""
    receive_ms: int
    """The router's required receive interval = the appliance's min_tx."""
    multiplier: int
    """Detect multiplier (the same on both ends)."""
    multihop: bool
    """RFC 5883 multihop session (the peering is multihop), else RFC 5881 single-hop."""

    @property
    def detection_ms(self) -> int:
        """How long the router takes to notice a dead appliance."""
        return self.multiplier * max(self.transmit_ms, self.receive_ms)


@dataclass(frozen=True, slots=True)
class Neighbor:
    """One BGP session as the router sees it: the neighbor is an appliance."""

    appliance: str
    """node.name of the appliance."""
    peer_name: str
    """The router's name in the appliance config (bgp.peers[].name)."""
    address: IPAddress
    """The appliance's address on this peering (bgp.peers[].local_address)."""
    asn: int
    """The appliance's ASN (bgp.local_asn)."""
    local_address: IPAddress
    """The router's own address on this peering (bgp.peers[].address)."""
    description: str
    """Safe for every vendor: letters, digits and ` _.:/@()+,=-` only."""
    password: str | None
    """TCP-MD5 key, PASSWORD_PLACEHOLDER, or None when the appliance uses none."""
    hold_time: int
    """Hold time in whole seconds, as the appliance offers it (at least 3)."""
    keepalive: int
    """Keepalive interval in whole seconds (below hold_time)."""
    multihop: int | None
    """eBGP multihop TTL; None: directly connected."""
    families: tuple[Family, ...]
    """Address families the session carries (the appliance's bgp.peers[].families)."""
    graceful_restart: bool
    """The appliance offers graceful restart: the router should act as helper."""
    restart_time: int
    """The appliance's graceful-restart time in seconds (informational for the router)."""
    bfd: Bfd | None
    """BFD timers of this session; None when the appliance runs no BFD with this router."""
    appliance_passive: bool
    """The appliance only listens: the router must open the session."""
    import_policy: str
    """Name of the ImportPolicy applied to routes from this neighbor."""
    max_prefix_ipv4: int
    """Prefix limit for IPv4 routes from this neighbor (see build.max_prefix)."""
    max_prefix_ipv6: int
    """Prefix limit for IPv6 routes from this neighbor."""
    vips_ipv4: int
    """IPv4 VIPs the appliance announces by BGP today (max-prefix is sized from these)."""
    vips_ipv6: int
    """IPv6 VIPs the appliance announces by BGP today."""
    mode: Literal["ecmp", "active-backup", "mixed"]
    """How the appliance announces: every service ECMP, active-backup, or both."""
    internal: bool
    """iBGP: the appliance shares the router's ASN."""

    def max_prefix(self, family: Family) -> int:
        """Prefix limit for one family."""
        return self.max_prefix_ipv4 if family == "ipv4-unicast" else self.max_prefix_ipv6


@dataclass(frozen=True, slots=True)
class Router:
    """Everything one router needs: its identity, its neighbors, policies and knobs."""

    name: str
    """The router's name as the appliance configs call it."""
    asn: int
    """The router's ASN (bgp.peers[].asn)."""
    addresses: tuple[IPAddress, ...]
    """The router's own addresses on the peerings (sorted)."""
    router_id: IPv4Address | None
    """Lowest IPv4 peering address; None for an IPv6-only router (set one by hand)."""
    neighbors: tuple[Neighbor, ...]
    """One per appliance session with this router, sorted by appliance and address."""
    policies: tuple[ImportPolicy, ...]
    """Import policies the neighbors refer to (one per distinct prefix set)."""
    multipath: int
    """ECMP paths to install (number of appliances); 1 means no multipath."""
    multipath_relax: bool
    """Appliances sit in more than one ASN: ECMP must ignore the AS numbers."""
    always_compare_med: bool
    """active-backup across appliances in different ASNs: compare MED regardless of AS."""
    deterministic_med: bool
    """active-backup in use: group paths by AS before comparing MED (order-independent)."""
    export_default: bool
    """Send a default route to the appliances instead of nothing."""
    sources: tuple[Source, ...]
    """Appliance configs that contribute a neighbor to this router."""

    def families(self) -> tuple[Family, ...]:
        """Address families used by at least one neighbor, in fixed order."""
        return tuple(f for f in FAMILIES if any(f in n.families for n in self.neighbors))

    def policy(self, name: str) -> ImportPolicy:
        """The import policy called `name`."""
        return next(p for p in self.policies if p.name == name)

    def bfd(self) -> bool:
        """True when any neighbor asks for BFD."""
        return any(n.bfd is not None for n in self.neighbors)

    def graceful_restart(self) -> bool:
        """True when any neighbor offers graceful restart."""
        return any(n.graceful_restart for n in self.neighbors)


@dataclass(frozen=True, slots=True)
class RouterConfigModel:
    """The whole model: one entry per router, from one or more appliance configs."""

    version: str
    """edge-speaker version that built it."""
    sources: tuple[Source, ...]
    """Every appliance config with a bgp section that was read."""
    routers: tuple[Router, ...]
    """One per router address (or one merged router with --peer), sorted by address."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-ready structure (addresses and networks as strings)."""
        plain: dict[str, Any] = _plain(self)
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, IPv4Address | IPv6Address | IPv4Network | IPv6Network):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    slots = getattr(type(value), "__slots__", None)
    if slots is not None and hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value
