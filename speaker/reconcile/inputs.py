"""The inputs of a reconcile pass besides the config: drains and appliance health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Drains:
    """Operator drains (from `speaker drain`), each with the monotonic time it began."""

    appliance: float | None = None
    """The whole appliance is drained (planned maintenance) since this time."""
    services: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    backends: Mapping[tuple[str, str], float] = field(
        default_factory=lambda: MappingProxyType({}))
    """(service name, backend label) -> drain start."""

    def with_appliance(self, since: float | None) -> Drains:
        """Copy with the appliance drain set (or cleared with None)."""
        return Drains(since, self.services, self.backends)

    def with_service(self, name: str, since: float | None) -> Drains:
        """Copy with one service drained (or undrained)."""
        services = {k: v for k, v in self.services.items() if k != name}
        if since is not None:
            services[name] = since
        return Drains(self.appliance, MappingProxyType(services), self.backends)

    def with_backend(self, key: tuple[str, str], since: float | None) -> Drains:
        """Copy with one backend drained (or undrained)."""
        backends = {k: v for k, v in self.backends.items() if k != key}
        if since is not None:
            backends[key] = since
        return Drains(self.appliance, self.services, MappingProxyType(backends))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "appliance": self.appliance is not None,
            "services": sorted(self.services),
            "backends": sorted(f"{s}/{b}" for s, b in self.backends),
        }


@dataclass(frozen=True, slots=True)
class ApplianceHealth:
    """Self-health of this appliance (uplinks, services at quorum)."""

    healthy: bool = True
    reasons: tuple[str, ...] = ()
