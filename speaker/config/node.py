"""The node section (who this appliance is) and the api/metrics/log sections."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from speaker.config.base import Section
from speaker.config.types import IfName, Name, Port, SafeText


class InterfaceConfig(Section):
    """One network interface of the appliance and what it faces."""

    name: IfName
    role: Literal["client", "backend", "both"] = "client"
    """`client`: faces clients/routers (VIPs are announced here, ARP answered here);
    `backend`: faces the real servers; `both`: a single-armed appliance."""
    vlan: int | None = Field(default=None, ge=1, le=4094)
    """802.1Q VLAN id when `name` is a VLAN sub-interface (informational)."""


class SelfChecks(Section):
    """Appliance self-health: a sick appliance hands its VIPs over."""

    uplinks: list[IfName] = []
    """Interfaces that must be up (oper state) for this appliance to announce."""
    min_healthy_services: int = Field(default=0, ge=0)
    """Below this many services at quorum, the appliance counts as unhealthy."""
    priority_penalty: int = Field(default=50, ge=0, le=254)
    """Subtracted from election priority while the appliance is unhealthy."""


class NodeConfig(Section):
    """Identity of this appliance."""

    name: Name
    router_id: IPv4Address
    interfaces: list[InterfaceConfig] = Field(min_length=1)
    self_checks: SelfChecks = SelfChecks()

    @model_validator(mode="after")
    def _unique_interfaces(self) -> NodeConfig:
        names = [i.name for i in self.interfaces]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"interfaces listed twice: {', '.join(dupes)}")
        return self

    def client_interfaces(self) -> list[str]:
        """Names of interfaces on which VIPs are announced at L2."""
        return [i.name for i in self.interfaces if i.role in ("client", "both")]


class ApiConfig(Section):
    """The status/admin API: a unix socket for `speaker status|reload|drain`."""

    socket: Path = Path("/run/edge-speaker/api.sock")
    mode: int = Field(default=0o660, ge=0, le=0o777)


class MetricsConfig(Section):
    """Prometheus endpoint."""

    enabled: bool = True
    address: SafeText = "127.0.0.1"
    port: Port = 9469


class LogConfig(Section):
    """Structured logs on stderr."""

    format: Literal["json", "logfmt"] = "logfmt"
    level: Literal["debug", "info", "warning", "error"] = "info"
