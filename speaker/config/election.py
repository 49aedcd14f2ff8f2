"""The election section: which appliance leads each group of VIPs.

Engines: `single` (always leader), `vrrp` (VRRPv3, RFC 5798, on a shared
segment), `etcd` (lease-based, for fleets without a shared segment).
Timers come from a named preset; a group may override single values.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, model_validator

from speaker.config.base import Section
from speaker.config.types import IfName, Name, PositiveSeconds, SafeText

ElectionPreset = Literal["fast", "default", "conservative"]

ADVERT_INTERVAL_S: dict[str, float] = {"fast": 0.1, "default": 1.0, "conservative": 3.0}
"""VRRP advertisement interval per preset. Master-down = 3 x interval + skew."""


class GroupConfig(Section):
    """One election group: a set of VIPs that move together."""

    name: Name
    vrid: int | None = Field(default=None, ge=1, le=255)
    """VRRP virtual router id (required with engine `vrrp`); unique per segment."""
    priority: int = Field(default=100, ge=1, le=255)
    """Higher wins. 255 means this appliance owns the addresses (RFC 5798 5.2.4)."""
    preempt: bool = True
    """Take the lead back from a lower-priority leader."""
    preempt_delay: PositiveSeconds | None = None
    """Wait this long after start before preempting (lets routes converge)."""
    advert_interval: PositiveSeconds | None = None
    """Override the preset's advertisement interval (10 ms resolution, max 40.95 s)."""
    interface: IfName | None = None
    """Interface for VRRP adverts; defaults to election.interface."""

    @model_validator(mode="after")
    def _check_interval(self) -> GroupConfig:
        if self.advert_interval is not None and not 0.01 <= self.advert_interval <= 40.95:
            raise ValueError("advert_interval must be between 10ms and 40.95s (VRRPv3)")
        return self


class VrrpConfig(Section):
    """VRRPv3 transport options."""

    interface: IfName | None = None
    """Default interface for adverts (a client-facing interface)."""
    unicast_peers: list[IPv4Address | IPv6Address] = []
    """Send adverts by unicast to these peers instead of multicast 224.0.0.18."""
    source_address: IPv4Address | IPv6Address | None = None
    peers: list[IPv4Address | IPv6Address] = []
    """The other appliances' advert source addresses, for multicast (with unicast,
    `unicast_peers` are the peers). With `check_source`, adverts from anyone else are
    discarded (counted as `not_a_peer`), so a stray host cannot take the VIPs."""
    check_source: bool = True
    """Accept adverts only from `peers` + `unicast_peers` when either is set (keepalived's
    `check_unicast_src`, also applied to multicast). No peer list: every source counts."""
    peer_interval_min: PositiveSeconds = 0.01
    """Adverts announcing an interval below this are discarded (`interval_out_of_range`)."""
    peer_interval_max: PositiveSeconds = 10.0
    """Adverts announcing an interval above this are discarded: a forged advert with
    40.95 s would otherwise keep a backup silent for two minutes."""

    @model_validator(mode="after")
    def _check_range(self) -> VrrpConfig:
        if self.peer_interval_min > self.peer_interval_max:
            raise ValueError("peer_interval_min must not exceed peer_interval_max")
        return self

    def accepted_peers(self) -> frozenset[IPv4Address | IPv6Address]:
        """Sources whose adverts count (empty: any source, no check)."""
        return frozenset([*self.peers, *self.unicast_peers]) if self.check_source else frozenset()


class EtcdConfig(Section):
    """etcd lease election (engine `etcd`)."""

    endpoints: list[SafeText] = Field(default=[], min_length=0)
    prefix: SafeText = "/edge-speaker/election"
    lease_ttl: PositiveSeconds = 2.0


class ElectionConfig(Section):
    """Leader election per group of VIPs."""

    engine: Literal["single", "vrrp", "etcd"] = "single"
    preset: ElectionPreset = "default"
    groups: list[GroupConfig] = [GroupConfig(name="default")]
    vrrp: VrrpConfig = VrrpConfig()
    etcd: EtcdConfig = EtcdConfig()

    @model_validator(mode="after")
    def _check_engine(self) -> ElectionConfig:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"group names listed twice: {', '.join(dupes)}")
        if self.engine == "vrrp":
            missing = [g.name for g in self.groups if g.vrid is None]
            if missing:
                raise ValueError(f"engine vrrp needs a vrid for groups: {', '.join(missing)}")
            vrids = [g.vrid for g in self.groups]
            if len(set(vrids)) != len(vrids):
                raise ValueError("every group needs its own vrid")
            no_if = [g.name for g in self.groups if g.interface is None]
            if no_if and self.vrrp.interface is None:
                raise ValueError(
                    f"engine vrrp needs vrrp.interface or an interface per group: {no_if}"
                )
            lo, hi = self.vrrp.peer_interval_min, self.vrrp.peer_interval_max
            odd = [g.name for g in self.groups if not lo <= self.advert_interval(g) <= hi]
            if odd:
                raise ValueError(f"advert interval of groups {odd} is outside "
                                 f"vrrp.peer_interval_min..max ({lo:g}..{hi:g} s)")
        if self.engine == "etcd" and not self.etcd.endpoints:
            raise ValueError("engine etcd needs etcd.endpoints")
        return self

    def group(self, name: str) -> GroupConfig | None:
        """The group called `name`, if any."""
        return next((g for g in self.groups if g.name == name), None)

    def advert_interval(self, group: GroupConfig) -> float:
        """Effective advertisement interval of a group, in seconds."""
        return group.advert_interval or ADVERT_INTERVAL_S[self.preset]
