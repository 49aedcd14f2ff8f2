"""A service: one VIP, its ports, how it is announced, and the backends behind it."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from pydantic import Field, model_validator

from speaker.config.base import Section
from speaker.config.bgp import Attributes, BgpMode
from speaker.config.dns import ServiceDns
from speaker.config.health import HealthCheck
from speaker.config.types import Name, Port, PositiveSeconds, SafeText

Scheduler = Literal["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo",
                    "ovf", "mh", "twos"]
SchedFlag = Literal["sh-fallback", "sh-port", "mh-fallback", "mh-port"]
Forwarding = Literal["nat", "dr", "tunnel"]

K8S_AFFINITY_TIMEOUT_S = 10800.0
"""Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds."""


class Backend(Section):
    """One real server."""

    address: IPv4Address | IPv6Address
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
    vip: IPv4Address | IPv6Address
    ports: list[Port] = Field(default=[], max_length=64)
    """Service ports; empty with `fwmark` set, or all ports with `ports: []` + persistence."""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    fwmark: int | None = Field(default=None, ge=1, le=0xFFFFFFFF)
    """Firewall-mark service instead of address:port services."""
    announce: Literal["bgp", "l2", "both"] = "bgp"
    group: Name = "default"
    """Election group that decides the owner (l2) / leader (active-backup)."""
    scheduler: Scheduler = "wlc"
    scheduler_flags: list[SchedFlag] = []
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

    @model_validator(mode="after")
    def _check(self) -> ServiceConfig:
        if not self.ports and self.fwmark is None:
            raise ValueError("a service needs ports or a fwmark")
        if len(set(self.ports)) != len(self.ports):
            raise ValueError("ports listed twice")
        prefix = self.scheduler + "-"
        wrong = [f for f in self.scheduler_flags if not f.startswith(prefix)]
        if wrong:
            raise ValueError(f"scheduler_flags {wrong} do not apply to scheduler {self.scheduler}")
        if self.quorum.min_healthy > len(self.backends):
            raise ValueError(
                f"quorum.min_healthy={self.quorum.min_healthy} exceeds the "
                f"{len(self.backends)} backends; the VIP could never be announced"
            )
        mixed = [str(b.address) for b in self.backends if b.address.version != self.vip.version]
        if mixed and self.forwarding != "tunnel":
            raise ValueError(
                f"backends {mixed} are not IPv{self.vip.version} like the VIP; "
                "only forwarding 'tunnel' can mix families"
            )
        portless = [str(b.address) for b in self.backends if b.port is None]
        if (not self.ports and self.health.port is None and portless
                and self.health.type in ("tcp", "http", "https", "dns")):
            raise ValueError(f"health check {self.health.type!r} has no port for backends "
                             f"{portless}: set health.port or a backend port")
        keys = [(str(b.address), b.port) for b in self.backends]
        dupes = sorted({f"{a}:{p or '*'}" for a, p in keys if keys.count((a, p)) > 1})
        if dupes:
            raise ValueError(f"backends listed twice: {', '.join(dupes)}")
        if self.forwarding == "dr" and any(b.port not in (None, *self.ports[:1])
                                             for b in self.backends if len(self.ports) == 1):
            raise ValueError("forwarding 'dr' cannot change the port: backend port must match")
        return self

    def backend_label(self, backend: Backend) -> str:
        """Stable backend label for status and metrics."""
        if backend.name:
            return backend.name
        port = backend.port or (self.ports[0] if self.ports else 0)
        host = f"[{backend.address}]" if backend.address.version == 6 else str(backend.address)
        return f"{host}:{port}"
