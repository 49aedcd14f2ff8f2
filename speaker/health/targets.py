"""What to check: one Target per (service, backend), derived from the config.

Pure: `targets_from_config()` reads an AppConfig and says which address and
port each backend is checked at, with which check and timers. Multi-port
services are checked once per backend: at `health.port`, else the backend's
own port, else the service's first port (else the check type's well-known
port). The `fingerprint` tells a reload whether a backend's check changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from speaker.config import AppConfig
from speaker.config.health import HealthCheck
from speaker.config.service import Backend, ServiceConfig
from speaker.model import IPAddress

Key = tuple[str, str]
"""(service name, backend label), as in HealthSource.snapshot()."""

_WELL_KNOWN_PORT = {"http": 80, "https": 443, "dns": 53}


@dataclass(frozen=True, slots=True)
class Timers:
    """The timers in force for a check (preset plus overrides)."""

    interval: float
    timeout: float
    rise: int
    fall: int
    fast_interval: float
    """Interval while a backend is between states (no verdict yet, or a streak)."""

    @classmethod
    def of(cls, check: HealthCheck) -> Timers:
        """Effective timers of a HealthCheck."""
        return cls(interval=check.effective("interval"), timeout=check.effective("timeout"),
                   rise=int(check.effective("rise")), fall=int(check.effective("fall")),
                   fast_interval=check.effective("fast_interval"))


@dataclass(frozen=True, slots=True)
class Target:
    """One backend of one service, and how it is checked."""

    service: str
    label: str
    address: IPAddress
    port: int | None
    """None only when nothing gives a port (fwmark service, tcp check, no health.port)."""
    check: HealthCheck
    timers: Timers
    fingerprint: str
    """Changes when what is probed changes (address, port, type, type parameters);
    timer changes keep it, so a reload that only retunes timers keeps all state."""

    @property
    def key(self) -> Key:
        """(service, backend label)."""
        return (self.service, self.label)

    @property
    def kind(self) -> str:
        """Check type: tcp, http, https, dns, exec or none."""
        return self.check.type


def check_port(service: ServiceConfig, backend: Backend) -> int | None:
    """The port a backend is checked at (see module docstring)."""
    check = service.health
    if check.port is not None:
        return check.port
    if backend.port is not None:
        return backend.port
    if service.ports:
        return service.ports[0]
    return _WELL_KNOWN_PORT.get(check.type)


def _fingerprint(address: IPAddress, port: int | None, check: HealthCheck) -> str:
    params = check.model_dump_json(include={"type", "tcp", "http", "dns", "exec"})
    return f"{address}|{port}|{params}"


def target_for(service: ServiceConfig, backend: Backend) -> Target:
    """The Target of one backend of one service."""
    port = check_port(service, backend)
    return Target(service=service.name, label=service.backend_label(backend),
                  address=backend.address, port=port, check=service.health,
                  timers=Timers.of(service.health),
                  fingerprint=_fingerprint(backend.address, port, service.health))


def targets_from_config(config: AppConfig) -> dict[Key, Target]:
    """Every backend of every service, keyed by (service, backend label)."""
    out: dict[Key, Target] = {}
    for service in config.services:
        for backend in service.backends:
            target = target_for(service, backend)
            out[target.key] = target
    return out
