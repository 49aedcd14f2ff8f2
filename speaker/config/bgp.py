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
    bfd: bool = False
    """Ask for BFD on the router side (router-config renders it)."""
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
