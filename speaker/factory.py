"""Build the real parts of an appliance from its config.

The only place that knows which class implements which seam; tests build a
supervisor with `speaker.fakes` instead (see Supervisor's `build` argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speaker.config import AppConfig
from speaker.reconcile.apply import Parts
from speaker.seams import Election, HealthSource, Wake


@dataclass(slots=True)
class Built:
    """Everything the supervisor runs."""

    parts: Parts
    health: HealthSource
    election: Election


class StartupError(Exception):
    """The appliance cannot start here (e.g. no IPVS in the kernel); the message says why."""


def uses_bgp(config: AppConfig) -> bool:
    """True when some service is announced by BGP."""
    return config.bgp is not None and any(s.announce in ("bgp", "both") for s in config.services)


def uses_l2(config: AppConfig) -> bool:
    """True when some service is announced on the local segment."""
    return any(s.announce in ("l2", "both") for s in config.services)


def build_parts(config: AppConfig, wake: Wake, runtime_dir: Path) -> Built:
    """Instantiate the real parts this config needs."""
    from dataplane.addresses import LoAddresses
    from speaker.election import make_election
    from speaker.health import HealthChecker

    forwarder = None
    if config.dataplane.ipvs:
        from dataplane.forwarder import IpvsForwarder, IpvsUnavailableError

        try:
            forwarder = IpvsForwarder.from_config(config)
        except IpvsUnavailableError as exc:
            raise StartupError(str(exc)) from None
    bgp = None
    if uses_bgp(config):
        from speaker.bgp import ExaBgpSpeaker

        bgp = ExaBgpSpeaker(config, wake, runtime_dir=runtime_dir / "bgp")
    l2 = None
    if uses_l2(config):
        from speaker.l2 import L2Responder

        l2 = L2Responder(config, wake)
    parts = Parts(LoAddresses(config.dataplane.vip_interface), forwarder, bgp, l2)
    return Built(parts, HealthChecker(config, wake), make_election(config, wake))
