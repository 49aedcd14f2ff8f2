"""The dns section: RFC 2136 servers that receive A/AAAA records for announced VIPs.

Per service, `dns: {names: [...], ttl: 30}` lists the names that point at its VIP;
the top-level `dns:` section says which servers hold which zones and how updates are
signed (TSIG). `owner` is the registry's owner id: every appliance of one fleet uses
the same value, so that they share one record set per name and never touch a record
some other owner (or nobody, by hand) created.
"""

from __future__ import annotations

import base64
import binascii
import re
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.secrets import read_secret_file
from speaker.config.types import Name, Port, PositiveSeconds, SafePath, SafeText

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TsigAlgorithm = Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224",
                        "hmac-sha1", "hmac-md5"]


def _check_dns_name(value: str) -> str:
    name = value.lower().rstrip(".")
    if not name or len(name) > 253:
        raise ValueError(f"{value!r} is not a DNS name (1-253 characters)")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"{value!r} is not a DNS name: label {label!r} must be 1-63 "
                             "letters, digits or '-', not starting or ending with '-'")
    return name


def _check_secret(value: str) -> str:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a TSIG secret is base64 (as tsig-keygen prints it)") from None
    if len(raw) < 16:
        raise ValueError("a TSIG secret must decode to at least 16 bytes")
    return value.strip()


def in_zone(name: str, zone: str) -> bool:
    """True when `name` is the zone apex or below it."""
    return name == zone or name.endswith("." + zone)


class TsigKey(Section):
    """A TSIG key (RFC 8945) as BIND's `tsig-keygen` prints it."""

    name: str
    algorithm: TsigAlgorithm = "hmac-sha256"
    secret: SafeText | None = None
    """Base64 secret; or keep it out of the YAML with `secret_file`."""
    secret_file: SafePath | None = None
    """A file holding only the base64 secret (read at load and on every reload)."""

    _name = field_validator("name")(_check_dns_name)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _check_secret(value)

    @model_validator(mode="after")
    def _one_secret(self) -> TsigKey:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("set exactly one of secret and secret_file")
        if self.secret_file is not None:
            if not self.secret_file.is_absolute():
                raise ValueError("secret_file must be an absolute path")
            # never blocks on a FIFO, bounded size (speaker.config.secrets)
            _check_secret(read_secret_file(self.secret_file, "secret_file", private=False))
        return self

    def secret_value(self) -> str:
        """The base64 secret, from the YAML or (read now) from `secret_file`."""
        if self.secret is not None or self.secret_file is None:
            return self.secret or ""
        return _check_secret(read_secret_file(self.secret_file, "secret_file", private=False))


class DnsServer(Section):
    """One primary server that accepts RFC 2136 updates for one zone."""

    address: IPv4Address | IPv6Address
    port: Port = 53
    zone: str
    """The zone the updates are for (the server must be authoritative for it)."""
    tsig: TsigKey | None = None
    """Sign updates (and the reads before them) with this key; unsigned if absent."""

    _zone = field_validator("zone")(_check_dns_name)


class DnsConfig(Section):
    """Where VIP records are published and how the shared registry behaves."""

    owner: Name = "edge-speaker"
    """Registry owner id, the same on every appliance that may serve the same names."""
    servers: list[DnsServer] = Field(min_length=1, max_length=16)
    timeout: PositiveSeconds = 2.0
    """Per DNS request (read or update)."""
    refresh: PositiveSeconds = 60.0
    """How often an appliance renews its claim on a name it serves."""
    claim_lifetime: PositiveSeconds = 180.0
    """A claim not renewed for this long is stale: the VIP's last live appliance may
    then remove the record although a dead appliance never withdrew its claim."""

    @model_validator(mode="after")
    def _timers(self) -> DnsConfig:
        if self.refresh < 1 or self.claim_lifetime > 86400:
            raise ValueError("refresh must be at least 1 s and claim_lifetime at most 1 day")
        if self.claim_lifetime < 2 * self.refresh:
            raise ValueError("claim_lifetime must be at least twice refresh (a claim must "
                             "survive one missed renewal)")
        if self.timeout >= self.refresh:
            raise ValueError("timeout must be shorter than refresh")
        return self

    def server_for(self, name: str) -> DnsServer | None:
        """The server whose zone is the longest suffix of `name`."""
        matches = [s for s in self.servers if in_zone(name, s.zone)]
        return max(matches, key=lambda s: len(s.zone)) if matches else None


class ServiceDns(Section):
    """Names that resolve to a service's VIP while this fleet announces it."""

    names: list[str] = Field(min_length=1, max_length=32)
    ttl: int = Field(default=30, ge=1, le=86400)
    """TTL of the A/AAAA records (short: resolvers must notice a withdrawal soon)."""

    @field_validator("names")
    @classmethod
    def _names(cls, values: list[str]) -> list[str]:
        names = [_check_dns_name(v) for v in values]
        if len(set(names)) != len(names):
            raise ValueError("a name is listed twice")
        return names
