"""The whole appliance config and the checks that span sections."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, model_validator

from speaker.config.base import Section
from speaker.config.bgp import BgpConfig
from speaker.config.dataplane import DataplaneConfig
from speaker.config.dns import DnsConfig
from speaker.config.election import ElectionConfig
from speaker.config.hooks import Hook
from speaker.config.node import ApiConfig, LogConfig, MetricsConfig, NodeConfig
from speaker.config.service import ServiceConfig


class CrossFieldError(ValueError):
    """A rule that spans sections, reported at `path` (a tuple like a pydantic loc)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class AppConfig(Section):
    """One appliance: who it is, how it elects, announces and forwards."""

    node: NodeConfig
    election: ElectionConfig = ElectionConfig()
    bgp: BgpConfig | None = None
    services: list[ServiceConfig] = []
    dataplane: DataplaneConfig = DataplaneConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    hooks: list[Hook] = Field(default=[], max_length=256)
    """Commands run on leader gained/lost and VIP announced/withdrawn (docs/hooks.md)."""
    dns: DnsConfig | None = None

    def cross_field_errors(self) -> list[CrossFieldError]:
        """Every rule that spans sections, broken, with the path of the offending field."""
        errors: list[CrossFieldError] = []
        ifnames = {i.name for i in self.node.interfaces}
        for i, up in enumerate(self.node.self_checks.uplinks):
            if up not in ifnames:
                errors.append(CrossFieldError(("node", "self_checks", "uplinks", i),
                                              f"{up!r} is not in node.interfaces"))
        vrrp_if = self.election.vrrp.interface
        if vrrp_if is not None and vrrp_if not in ifnames:
            errors.append(CrossFieldError(("election", "vrrp", "interface"),
                                          f"{vrrp_if!r} is not in node.interfaces"))
        for gi, group in enumerate(self.election.groups):
            if group.interface is not None and group.interface not in ifnames:
                errors.append(CrossFieldError(("election", "groups", gi, "interface"),
                                              f"{group.interface!r} is not in node.interfaces"))
        errors.extend(self._service_errors())
        errors.extend(self._dns_errors())
        errors.extend(self._hook_errors())
        return errors

    def _hook_errors(self) -> list[CrossFieldError]:
        groups = {g.name for g in self.election.groups}
        services = {s.name for s in self.services}
        errors: list[CrossFieldError] = []
        for i, hook in enumerate(self.hooks):
            if hook.group is not None and hook.group not in groups:
                errors.append(CrossFieldError(("hooks", i, "group"), f"group {hook.group!r} "
                                              "is not defined in election.groups"))
            if hook.service is not None and hook.service not in services:
                errors.append(CrossFieldError(("hooks", i, "service"), f"no service named "
                                              f"{hook.service!r}"))
        return errors

    def _dns_errors(self) -> list[CrossFieldError]:
        errors: list[CrossFieldError] = []
        seen: dict[str, str] = {}
        for si, svc in enumerate(self.services):
            if svc.dns is None:
                continue
            if self.dns is None:
                errors.append(CrossFieldError(("services", si, "dns"),
                                              "service DNS names need a top-level dns section"))
                continue
            for ni, name in enumerate(svc.dns.names):
                at = ("services", si, "dns", "names", ni)
                if name in seen:
                    errors.append(CrossFieldError(at, f"{name!r} is already published for "
                                                  f"service {seen[name]!r}"))
                seen.setdefault(name, svc.name)
                if self.dns.server_for(name) is None:
                    errors.append(CrossFieldError(at, f"{name!r} is in no zone of dns.servers"))
        return errors

    def _service_errors(self) -> list[CrossFieldError]:
        errors: list[CrossFieldError] = []
        groups = {g.name for g in self.election.groups}
        seen_names: dict[str, int] = {}
        seen_ports: dict[tuple[str, str, int], str] = {}
        v6_peer = self.bgp is not None and any(
            "ipv6-unicast" in p.families for p in self.bgp.peers)
        v4_peer = self.bgp is not None and any(
            "ipv4-unicast" in p.families for p in self.bgp.peers)
        for si, svc in enumerate(self.services):
            at = ("services", si)
            if svc.name in seen_names:
                errors.append(CrossFieldError((*at, "name"), f"service name {svc.name!r} is "
                                              f"already used by services[{seen_names[svc.name]}]"))
            seen_names.setdefault(svc.name, si)
            for port in svc.ports:
                key = (str(svc.vip), svc.protocol, port)
                if key in seen_ports:
                    errors.append(CrossFieldError((*at, "ports"), f"{svc.vip} {svc.protocol}/"
                                                  f"{port} is already served by {seen_ports[key]}"))
                seen_ports.setdefault(key, svc.name)
            if svc.group not in groups:
                errors.append(CrossFieldError((*at, "group"), f"group {svc.group!r} is not "
                                              f"defined in election.groups"))
            if svc.announce in ("bgp", "both"):
                if self.bgp is None:
                    errors.append(CrossFieldError((*at, "announce"),
                                                  f"announce {svc.announce!r} needs a bgp section"))
                elif (svc.vip.version == 6 and not v6_peer) or (svc.vip.version == 4
                                                                and not v4_peer):
                    errors.append(CrossFieldError((*at, "vip"), f"no BGP peer carries the "
                                                  f"ipv{svc.vip.version}-unicast family"))
                elif self.bgp.pools and not any(
                        svc.vip.version == p.version and svc.vip in p for p in self.bgp.pools):
                    errors.append(CrossFieldError((*at, "vip"),
                                                  f"{svc.vip} is outside every bgp.pools entry"))
            if svc.announce in ("l2", "both") and not self.node.client_interfaces():
                errors.append(CrossFieldError((*at, "announce"), "L2 announcement needs a "
                                              "node interface with role client or both"))
        return errors

    @model_validator(mode="after")
    def _no_cross_field_errors(self, info: ValidationInfo) -> AppConfig:
        # speaker.config.load defers these to report every one with its own path.
        if not (info.context or {}).get("defer_cross_field"):
            errors = self.cross_field_errors()
            if errors:
                raise errors[0]
        return self

    def service(self, name: str) -> ServiceConfig | None:
        """The service called `name`, if any."""
        return next((s for s in self.services if s.name == name), None)
