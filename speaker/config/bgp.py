"""The bgp section: this appliance's BGP speaker, its peers and route attributes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.secrets import read_password_file
from speaker.config.types import (
    Asn,
    Community,
    LargeCommunity,
    Name,
    PositiveSeconds,
    SafePath,
    SafeText,
    Seconds,
    reject_control_chars,
)

_PASSWORD_UNSAFE = frozenset(" \"'#!;{}?\\")
Family = Literal["ipv4-unicast", "ipv6-unicast"]
BgpMode = Literal["ecmp", "active-backup"]


MD5_KEY_MAX_BYTES = 80
"""TCP_MD5SIG_MAXKEYLEN of the Linux kernel."""


def check_md5_key(value: str) -> str:
    """A TCP-MD5 key every part can carry: <= 80 bytes of UTF-8, no control, bidi or
    router-syntax characters."""
    reject_control_chars(value)
    if not value:
        raise ValueError("must not be empty")
    size = len(value.encode("utf-8"))
    if size > MD5_KEY_MAX_BYTES:
        raise ValueError(f"is {size} bytes in UTF-8; a TCP-MD5 key is at most "
                         f"{MD5_KEY_MAX_BYTES} bytes (kernel limit)")
    bad = sorted({c for c in value if c in _PASSWORD_UNSAFE})
    if bad:
        raise ValueError(f"must not contain {' '.join(repr(c) for c in bad)}"
                         " (they break router config syntax)")
    return value


class GracefulRestart(Section):
    """RFC 4724 graceful restart as offered to the peer."""

    enabled: bool = False
    restart_time: PositiveSeconds = 120.0

    @model_validator(mode="after")
    def _check_time(self) -> GracefulRestart:
        if self.restart_time > 4095:
            raise FieldValueError(("restart_time",),
                                  "restart_time must be at most 4095 s (12-bit field)")
        return self


BFD_MIN_INTERVAL_S = 0.05
BFD_MAX_INTERVAL_S = 60.0


class BfdConfig(Section):
    """BFD (RFC 5880 asynchronous mode) towards one peer, run by the appliance's BFD
    child: single-hop (RFC 5881, UDP 3784) or, for a multihop peer, RFC 5883 (UDP 4784).
    `bfd: true` is short for the defaults (300 ms x 3, FRR bfdd's defaults)."""

    enabled: bool = True
    min_tx: Seconds = 0.3
    """Desired minimum transmit interval (RFC 5880 bfd.DesiredMinTxInterval); e.g. 100ms."""
    min_rx: Seconds = 0.3
    """Required minimum receive interval (bfd.RequiredMinRxInterval) offered to the peer."""
    multiplier: int = Field(default=3, ge=2, le=255)
    """Detect multiplier: the peer declares the session down after this many missed packets."""

    @field_validator("min_tx", "min_rx")
    @classmethod
    def _interval_bounds(cls, value: float) -> float:
        if not BFD_MIN_INTERVAL_S <= value <= BFD_MAX_INTERVAL_S:
            raise ValueError(f"must be between {BFD_MIN_INTERVAL_S * 1000:.0f}ms and "
                             f"{BFD_MAX_INTERVAL_S:.0f}s")
        if abs(value * 1000 - round(value * 1000)) > 1e-6:
            raise ValueError("must be a whole number of milliseconds (routers take ms)")
        return round(value * 1000) / 1000

    @property
    def min_tx_ms(self) -> int:
        """min_tx in milliseconds."""
        return round(self.min_tx * 1000)

    @property
    def min_rx_ms(self) -> int:
        """min_rx in milliseconds."""
        return round(self.min_rx * 1000)


class PeerConfig(Section):
    """One BGP neighbor (a router)."""

    name: Name
    address: IPv4Address | IPv6Address
    asn: Asn
    local_address: IPv4Address | IPv6Address | None = None
    description: SafeText | None = None
    password: SafeText | None = Field(default=None, min_length=1, max_length=80)
    """TCP-MD5 (RFC 2385) key; at most 80 bytes in UTF-8 (kernel limit)."""
    password_file: SafePath | None = None
    """Read the TCP-MD5 key from this file instead (absolute path; a regular file not
    readable by others; one line, trailing newline ignored). Read at every load, so a
    reload picks up a changed key; `password` then holds the key read."""
    hold_time: PositiveSeconds = 9.0
    """BGP hold time, 3..65535 s (0, "no hold timer", is not supported: the appliance
    relies on it to notice a dead router)."""
    keepalive: PositiveSeconds | None = None
    """Keepalive the router side is rendered with (router-config). ExaBGP itself always
    sends keepalives at hold_time / 3; a different value is logged as ignored."""
    multihop: int | None = Field(default=None, ge=2, le=255)
    """eBGP multihop TTL; unset means directly connected."""
    families: list[Family] = ["ipv4-unicast", "ipv6-unicast"]
    graceful_restart: GracefulRestart = GracefulRestart()
    bfd: BfdConfig = BfdConfig(enabled=False)
    """BFD on this session: `true`/`false`, or {enabled, min_tx, min_rx, multiplier}.
    The appliance runs it (speaker/bfd) and router-config renders the same timers."""
    passive: bool = False

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("password_file") is None:
            return data
        if data.get("password") is not None:
            raise FieldValueError(("password_file",), "give password or password_file, "
                                  "not both")
        try:
            key = read_password_file(data["password_file"])
        except ValueError as exc:
            raise FieldValueError(("password_file",), str(exc)) from None
        try:
            check_md5_key(key)
        except ValueError as exc:
            raise FieldValueError(("password_file",), f"the key in the file {exc}") from None
        return {**data, "password": key}

    @field_validator("bfd", mode="before")
    @classmethod
    def _bfd_shorthand(cls, value: object) -> object:
        if isinstance(value, bool):  # the original form: bfd: true / false
            return {"enabled": value}
        return value

    @field_validator("password")
    @classmethod
    def _router_safe_password(cls, value: str | None) -> str | None:
        if value is not None:
            check_md5_key(value)
        return value

    @model_validator(mode="after")
    def _check_timers(self) -> PeerConfig:
        if not 3 <= round(self.hold_time) <= 65535:
            raise FieldValueError(("hold_time",), "hold_time must be 3..65535 s (RFC 4271; "
                                  "0, no hold timer, is not supported by the appliance)")
        if self.keepalive is not None and self.keepalive >= self.hold_time:
            raise FieldValueError(("keepalive",), "keepalive must be shorter than hold_time")
        if not self.families:
            raise FieldValueError(("families",), "families must name at least one address "
                                  "family")
        if self.local_address is not None and self.local_address.version != self.address.version:
            raise FieldValueError(("local_address",), "local_address and address must be the "
                                  "same IP version")
        return self

    @property
    def effective_keepalive(self) -> float:
        """Keepalive interval actually used."""
        return self.keepalive if self.keepalive is not None else self.hold_time / 3


class Attributes(Section):
    """Path attributes of an announcement. Unset fields inherit the defaults."""

    communities: list[Community] | None = None
    large_communities: list[LargeCommunity] | None = None
    med: int | None = Field(default=None, ge=0, le=4294967295)
    local_pref: int | None = Field(default=None, ge=0, le=4294967295)
    """Only carried on iBGP sessions."""
    as_path_prepend: int | None = Field(default=None, ge=0, le=16)
    next_hop: Literal["self"] | IPv4Address | IPv6Address | None = None


class ActiveBackup(Section):
    """How a non-leader announces in `active-backup` mode (a worse route)."""

    med_penalty: int = Field(default=100, ge=0)
    as_path_prepend: int = Field(default=3, ge=0, le=16)


class BgpConfig(Section):
    """The BGP speaker (ExaBGP under supervision)."""

    local_asn: Asn
    router_id: IPv4Address | None = None
    """Defaults to node.router_id."""
    peers: list[PeerConfig] = Field(min_length=1)
    defaults: Attributes = Attributes(next_hop="self")
    mode: BgpMode = "ecmp"
    """Default mode for services: `ecmp` (every healthy appliance announces) or
    `active-backup` (the group's leader announces plainly, others a worse route)."""
    active_backup: ActiveBackup = ActiveBackup()
    pools: list[IPv4Network | IPv6Network] = []
    """VIP pools the routers accept (router-config filters). Default: every VIP /32 /128."""
    graceful_shutdown: bool = True
    """Tag routes with GRACEFUL_SHUTDOWN 65535:0 (RFC 8326) before a planned withdraw."""
    graceful_shutdown_time: Seconds = 5.0
    """How long a drained VIP stays announced with 65535:0 before it is withdrawn."""
    exabgp: SafeText | None = None
    """Path of the exabgp executable; default: the one next to this Python."""

    @field_validator("pools")
    @classmethod
    def _no_catch_all(cls, pools: list[IPv4Network | IPv6Network]
                      ) -> list[IPv4Network | IPv6Network]:
        for i, pool in enumerate(pools):
            if pool.prefixlen == 0:
                raise FieldValueError((i,), f"{pool} is a catch-all pool: the routers would "
                                      "accept any host route from the appliances; list the "
                                      "VIP ranges")
        return pools

    @model_validator(mode="after")
    def _unique_peers(self) -> BgpConfig:
        for label in ("address", "name"):
            first: dict[str, int] = {}
            for i, peer in enumerate(self.peers):
                value = str(getattr(peer, label))
                if value in first:
                    raise FieldValueError(("peers", i, label), f"peer {label} {value} is "
                                          f"already used by bgp.peers[{first[value]}]")
                first[value] = i
        return self
