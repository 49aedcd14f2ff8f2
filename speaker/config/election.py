"""The election section: which appliance leads each group of VIPs.

Engines: `single` (always leader), `vrrp` (VRRPv3, RFC 5798, on a shared
segment), `etcd` (lease-based, for fleets without a shared segment).
Timers come from a named preset; a group may override single values.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, ValidationInfo, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.types import IfName, Name, PositiveSeconds, SafeText

_ENDPOINT = re.compile(r"^(https?)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$")
ElectionPreset = Literal["fast", "default", "conservative"]

ADVERT_INTERVAL_S: dict[str, float] = {"fast": 0.05, "default": 1.0, "conservative": 3.0}
"""VRRP advertisement interval per preset. Master-down = 3 x interval + skew. `fast` is
50 ms: failover p99 0.2 s, and no false failover in 10 minutes with the CPU saturated
(bench/false_failovers.py, docs/performance.md); the VRRP engine runs in the realtime
timing child."""


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
            raise FieldValueError(("advert_interval",), "advert_interval must be between 10ms "
                                  "and 40.95s (VRRPv3)")
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


ETCD_TTL_MIN_S = 2
"""etcd 3.4's smallest lease with default server timers (3 x election timeout / 2, rounded up)."""
ETCD_TTL_MAX_S = 300


class EtcdTls(Section):
    """TLS towards etcd (endpoints with https://). Files are read at start and on reload."""

    ca_file: FilePath
    """CA bundle that signed the etcd servers' certificates."""
    cert_file: FilePath | None = None
    """Client certificate (etcd --client-cert-auth); needs key_file."""
    key_file: FilePath | None = None
    server_name: SafeText | None = None
    """Name to check the server certificate against, if not the endpoint's host."""

    @model_validator(mode="after")
    def _pair(self) -> EtcdTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate)")
        return self


class EtcdConfig(Section):
    """etcd lease election (engine `etcd`); see docs/etcd.md for the timing rule.

    One lease per appliance carries every key it holds; the leader of a group stops
    announcing when `lease_ttl - step_down_margin` has passed since the send time of
    its last acknowledged keepalive, so it is silent before the server can expire
    the lease and let another appliance take the key.
    """

    endpoints: list[SafeText] = []
    """Client URLs of the etcd members, e.g. https://192.0.2.1:2379 (one scheme for all)."""
    prefix: SafeText = "/edge-speaker/election"
    """Key prefix; a group's leader key is PREFIX/GROUP/leader."""
    lease_ttl: int = Field(default=2, ge=ETCD_TTL_MIN_S, le=ETCD_TTL_MAX_S)
    """Lease TTL in whole seconds (etcd's unit): the failover time after an appliance dies."""
    renew_interval: PositiveSeconds | None = None
    """Keepalive period (Patroni's loop_wait). Default lease_ttl / 4."""
    request_timeout: PositiveSeconds | None = None
    """Deadline of one etcd request (Patroni's retry_timeout). Default lease_ttl / 4."""
    step_down_margin: PositiveSeconds | None = None
    """Time kept between stepping down and the earliest server-side expiry: covers
    withdrawing announcements and clock-rate drift. Default lease_ttl / 4."""
    standby_delay: PositiveSeconds = 0.5
    """A candidate ranked n-th (by priority) waits n x standby_delay before campaigning
    for a vacant key, so the preferred appliance wins."""
    username: SafeText | None = None
    password: SafeText | None = None
    password_file: FilePath | None = None
    """File holding the password (first line); instead of `password`."""
    tls: EtcdTls | None = None

    @field_validator("endpoints")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        schemes = set()
        for url in value:
            match = _ENDPOINT.match(url)
            if not match:
                raise ValueError(f"{url!r} is not an etcd client URL (http[s]://HOST:PORT)")
            if not 0 < int(match.group(3)) < 65536:
                raise ValueError(f"{url!r}: port must be 1-65535")
            schemes.add(match.group(1))
        if len(schemes) > 1:
            raise ValueError("every endpoint must use the same scheme (http or https)")
        if len(set(value)) != len(value):
            raise ValueError("an endpoint is listed twice")
        return value

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError("prefix must start with '/' and not end with '/' (e.g. /edge-speaker)")
        return value

    @field_validator("step_down_margin")
    @classmethod
    def _timer_rule(cls, value: float | None, info: ValidationInfo) -> float | None:
        ttl = info.data.get("lease_ttl")
        if not isinstance(ttl, int) or "renew_interval" not in info.data \
                or "request_timeout" not in info.data:
            return value  # an earlier field is already reported
        quarter = ttl / 4
        renew = info.data["renew_interval"] or quarter
        timeout = info.data["request_timeout"] or quarter
        margin = value or quarter
        if renew + 2 * timeout + margin > ttl:
            raise ValueError(
                f"timers break the rule renew_interval + 2 x request_timeout + step_down_margin"
                f" <= lease_ttl ({renew:g} + 2 x {timeout:g} + {margin:g} > {ttl:g}): a leader"
                " would step down after one lost renewal, or announce past its lease")
        return value

    @field_validator("password_file")
    @classmethod
    def _auth(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        password = info.data.get("password")
        if password is not None and value is not None:
            raise ValueError("give password or password_file, not both")
        if (password is not None or value is not None) != (info.data.get("username") is not None):
            raise ValueError("etcd auth needs username together with password or password_file")
        return value

    @field_validator("tls")
    @classmethod
    def _tls_scheme(cls, value: EtcdTls | None, info: ValidationInfo) -> EtcdTls | None:
        endpoints = info.data.get("endpoints") or []
        https = any(u.startswith("https://") for u in endpoints)
        if https and value is None:
            raise ValueError("https:// endpoints need tls (at least tls.ca_file)")
        if value is not None and endpoints and not https:
            raise ValueError("tls is set but the endpoints are http:// (use https://)")
        return value

    def timers(self) -> tuple[float, float, float]:
        """(renew_interval, request_timeout, step_down_margin), defaults filled in."""
        quarter = self.lease_ttl / 4
        return (self.renew_interval or quarter, self.request_timeout or quarter,
                self.step_down_margin or quarter)


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
