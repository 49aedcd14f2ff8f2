"""Build the real parts of an appliance from its config.

The only place that knows which class implements which seam; tests build a
supervisor with `speaker.fakes` instead (see Supervisor's `build` argument).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING

from speaker.config import AppConfig
from speaker.reconcile.apply import Parts
from speaker.seams import Election, Forwarder, HealthSource, Wake

if TYPE_CHECKING:
    from speaker.bfd.runner import BfdRunner


@dataclass(slots=True)
class Built:
    """Everything the supervisor runs."""

    parts: Parts
    health: HealthSource
    election: Election
    bfd: BfdRunner | None = None
    """The BFD child's supervisor: present with a bgp section (a reload may turn BFD on);
    the child itself runs only while some peer asks for BFD."""


class StartupError(Exception):
    """The appliance cannot start here (e.g. no IPVS in the kernel); the message says why."""


def uses_bgp(config: AppConfig) -> bool:
    """True when some service is announced by BGP."""
    return config.bgp is not None and any(s.announce in ("bgp", "both") for s in config.services)


def uses_l2(config: AppConfig) -> bool:
    """True when some service is announced on the local segment."""
    return any(s.announce in ("l2", "both") for s in config.services)


def uses_dns(config: AppConfig) -> bool:
    """True when some service publishes DNS names."""
    return config.dns is not None and any(s.dns is not None for s in config.services)


def managed_ranges(config: AppConfig) -> list[IPv4Network | IPv6Network]:
    """VIP ranges edge-speaker manages: dataplane.owned_ranges, bgp.pools, every VIP."""
    ranges: list[IPv4Network | IPv6Network] = list(config.dataplane.owned_ranges)
    if config.bgp is not None:
        ranges += config.bgp.pools
    ranges += [ip_network(s.vip) for s in config.services]
    return ranges


def build_forwarder(config: AppConfig) -> Forwarder:
    """The IPVS forwarder, or StartupError naming the missing kernel module."""
    from dataplane.ipvs.detect import IpvsUnavailableError, require_ipvs
    from dataplane.ipvs.forwarder import IpvsForwarder
    from dataplane.ipvs.ownership import Ownership

    try:
        require_ipvs()
    except IpvsUnavailableError as exc:
        raise StartupError(f"{exc} (or set dataplane.ipvs: false for announce-only)") from None
    marks = config.dataplane.owned_fwmarks
    ownership = Ownership(
        vip_ranges=tuple(r for r in config.dataplane.owned_ranges + (
            config.bgp.pools if config.bgp else [])),
        fwmarks=range(marks[0], marks[1] + 1) if marks else range(0),
    )
    config.dataplane.state_file.parent.mkdir(parents=True, exist_ok=True)
    return IpvsForwarder(ownership, state_file=config.dataplane.state_file)


def build_parts(config: AppConfig, wake: Wake, runtime_dir: Path) -> Built:
    """Instantiate the real parts this config needs."""
    from dataplane.addresses import VipAddresses
    from speaker.election import make_election
    from speaker.health import HealthChecker

    forwarder = build_forwarder(config) if config.dataplane.ipvs else None
    bgp = None
    if uses_bgp(config):
        from speaker.bgp import ExaBgpSpeaker

        bgp = ExaBgpSpeaker(config, wake, runtime_dir=runtime_dir / "bgp")
    election = make_election(config, wake)
    l2 = None
    if uses_l2(config):
        from speaker.l2 import L2Responder

        # a duplicate owner is resolved by the election's rule (lower priority yields)
        l2 = L2Responder(config, wake, conflict_hook=election.resolve_conflict)
    dns = None
    if uses_dns(config):
        from speaker.dns import DnsPublisher

        dns = DnsPublisher(config, wake)
    hooks = None
    if config.hooks:
        from speaker.hooks import HookRunner

        hooks = HookRunner(config)
    addresses = VipAddresses(config.dataplane.vip_interface, managed_ranges(config))
    parts = Parts(addresses, forwarder, bgp, l2, dns, hooks)
    bfd = None
    if config.bgp is not None:
        from speaker.bfd.runner import BfdRunner

        bfd = BfdRunner(config, wake)
    return Built(parts, HealthChecker(config, wake), election, bfd)
