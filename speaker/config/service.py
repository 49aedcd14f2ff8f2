"""A service: one VIP, its ports, how it is announced, and the backends behind it."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.bgp import Attributes, BgpMode
from speaker.config.dns import ServiceDns
from speaker.config.errors import FieldValueError
from speaker.config.health import HealthCheck
from speaker.config.types import IPAddress, Name, Port, PositiveSeconds, SafeText

Scheduler = Literal["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo",
                    "ovf", "mh", "twos"]
SchedFlag = Literal["sh-fallback", "sh-port", "mh-fallback", "mh-port"]
Forwarding = Literal["nat", "dr", "tunnel"]

K8S_AFFINITY_TIMEOUT_S = 10800.0
"""Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds."""


_LIMITED_BROADCAST = IPv4Address("255.255.255.255")


def unusable_vip(vip: IPv4Address | IPv6Address) -> str | None:
    """Why an address cannot be a VIP (None when it can)."""
    if vip.is_unspecified:
        return "the unspecified address"
    if vip.is_loopback:
        return "a loopback address"
    if vip.is_multicast:
        return "a multicast address"
    if vip == _LIMITED_BROADCAST:
        return "the broadcast address"
    if vip.is_link_local:
        return "a link-local address"
    return None


class Backend(Section):
    """One real server."""

    address: IPAddress
    port: Port | None = None
    """Defaults to the service port (per port, for multi-port services)."""
    weight: int = Field(default=1, ge=0, le=65535)
    name: Name | None = None
    """Label in status and metrics; defaults to ADDRESS:PORT."""


class Persistence(Section):
    """Client-IP affinity: a client stays on one backend while it keeps coming."""

    timeout: PositiveSeconds = K8S_AFFINITY_TIMEOUT_S
    netmask: int | None = Field(default=None, ge=0, le=128)
    """Group clients by this prefix length (IPVS persistence netmask)."""

    @model_validator(mode="after")
    def _check_timeout(self) -> Persistence:
        if self.timeout > 31 * 24 * 3600:
            raise ValueError("timeout must be at most 31 days")
        return self


class Quorum(Section):
    """Minimum healthy backends for the VIP to be announced."""

    min_healthy: int = Field(default=1, ge=0)
    below: Literal["withdraw", "fail-open"] = "withdraw"
    """`withdraw`: stop announcing the VIP below quorum (reason below_quorum).
    `fail-open`: keep announcing and send to every backend, healthy or not."""


class ServiceBgp(Attributes):
    """Per-service BGP: mode plus attribute overrides of bgp.defaults."""

    mode: BgpMode | None = None


class ServiceConfig(Section):
    """One VIP and what stands behind it."""

    name: Name
    description: SafeText | None = None
    """Operator notes (free text, one line). Read by no part of the appliance; kept for
    the people who read the config."""
    vip: IPAddress
    ports: list[Port] = Field(default=[], max_length=64)
    """Service ports; empty with `fwmark` set, or all ports with `ports: []` + persistence."""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    fwmark: int | None = Field(default=None, ge=1, le=0xFFFFFFFF)
    """Firewall-mark service instead of address:port services."""
    announce: Literal["bgp", "l2", "both"] = "bgp"
    group: Name = "default"
    """Election group that decides the owner (l2) / leader (active-backup)."""
    scheduler: Scheduler = "wlc"
    scheduler_flags: list[SchedFlag] = Field(default_factory=list)
    forwarding: Forwarding = "nat"
    persistence: Persistence | None = None
    backends: list[Backend] = Field(min_length=1)
    health: HealthCheck = HealthCheck()
    quorum: Quorum = Quorum()
    drain_time: PositiveSeconds = 30.0
    """A failed or drained backend keeps weight 0 this long before removal."""
    bgp: ServiceBgp = ServiceBgp()
    dns: ServiceDns | None = None
    """A/AAAA records published (RFC 2136, the top-level `dns` section) while the VIP is
    announced by this fleet."""

    @field_validator("vip")
    @classmethod
    def _usable_vip(cls, vip: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
        problem = unusable_vip(vip)
        if problem:
            raise ValueError(f"{vip} is {problem}: it cannot be a service VIP")
        return vip

    @model_validator(mode="after")
    def _check(self) -> ServiceConfig:
        if not self.ports and self.fwmark is None:
            raise FieldValueError(("ports",), "a service needs ports or a fwmark")
        first_port: dict[int, int] = {}
        for i, port in enumerate(self.ports):
            if port in first_port:
                raise FieldValueError(("ports", i), f"port {port} listed twice")
            first_port[port] = i
        prefix = self.scheduler + "-"
        for i, flag in enumerate(self.scheduler_flags):
            if not flag.startswith(prefix):
                raise FieldValueError(("scheduler_flags", i), f"{flag} does not apply to "
                                      f"scheduler {self.scheduler}")
        if self.quorum.min_healthy > len(self.backends):
            raise FieldValueError(("quorum", "min_healthy"),
                                  f"quorum.min_healthy={self.quorum.min_healthy} exceeds the "
                                  f"{len(self.backends)} backends; the VIP could never be "
                                  "announced")
        self._check_backends()
        return self

    def _check_backends(self) -> None:
        """Backends fit the VIP (family, ports, health port); linear in their number.

        Runs once per service (50,000 backends in a big config): the per-backend work
        is a few integer comparisons and one dictionary insert."""
        vip, version = self.vip, self.vip.version
        needs_port = (not self.ports and self.health.port is None
                      and self.health.type in ("tcp", "http", "https", "dns"))
        dr_port = (self.ports[0] if self.forwarding == "dr" and len(self.ports) == 1
                   else None)
        may_mix = self.forwarding == "tunnel"
        first: dict[tuple[int | str, int | None], int] = {}
        for i, b in enumerate(self.backends):
            address, port = b.address, b.port
            if address == vip:
                raise FieldValueError(("backends", i, "address"), f"{address} is the "
                                      "service's own VIP: traffic would loop")
            if address.version != version and not may_mix:
                raise FieldValueError(("backends", i, "address"), f"{address} is not "
                                      f"IPv{version} like the VIP; only forwarding "
                                      "'tunnel' can mix families")
            # an IPv6 key keeps its scope (fe80::1%eth0 is not fe80::1%eth1)
            key = (int(address) if address.version == 4 else str(address), port)
            at = first.setdefault(key, i)
            if at != i:
                raise FieldValueError(("backends", i), f"backend {address}:{port or '*'} "
                                      f"is already backends[{at}]")
            if needs_port and port is None:
                raise FieldValueError(("health", "port"), f"health check {self.health.type!r} "
                                      f"has no port for backend {address}: set health.port "
                                      "or a backend port")
            if dr_port is not None and port is not None and port != dr_port:
                raise FieldValueError(("backends", i, "port"), "forwarding 'dr' cannot change "
                                      "the port: backend port must match")

    def backend_label(self, backend: Backend) -> str:
        """Stable backend label for status and metrics."""
        if backend.name:
            return backend.name
        port = backend.port or (self.ports[0] if self.ports else 0)
        host = f"[{backend.address}]" if backend.address.version == 6 else str(backend.address)
        return f"{host}:{port}"
