"""Core value types the parts of the appliance exchange.

Frozen, slotted dataclasses with `ipaddress` types: what the health checker
reports, what the election decides, and what the reconciler asks the BGP
speaker, the L2 announcer and the dataplane to make true.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class Reason(StrEnum):
    """Stable, machine-readable reason codes shown in status, logs and metrics."""

    ANNOUNCED = "announced"
    BACKUP_ROUTE = "backup_route"
    """active-backup: announced with a worse MED/AS path because not the leader."""
    FAIL_OPEN = "fail_open"
    """Below quorum but the service is configured to fail open."""
    NO_HEALTHY_BACKENDS = "no_healthy_backends"
    BELOW_QUORUM = "below_quorum"
    NOT_LEADER = "not_leader"
    DRAINED = "drained"
    APPLIANCE_UNHEALTHY = "appliance_unhealthy"
    SHUTTING_DOWN = "shutting_down"
    NOT_ANNOUNCED_HERE = "not_announced_here"
    """The service's announce mode does not use this mechanism."""
    REMOVED_FROM_CONFIG = "removed_from_config"
    CONFIG_CHANGED = "config_changed"
    BACKEND_UP = "backend_up"
    BACKEND_DOWN = "backend_down"
    BACKEND_DRAINING = "backend_draining"
    """Weight 0: existing connections finish, no new ones (down or drained)."""
    BACKEND_REMOVED = "backend_removed"


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """Latest verdict of the health checker for one backend of one service."""

    service: str
    backend: str
    """Backend label (ServiceConfig.backend_label)."""
    up: bool
    since: float
    """Monotonic time of the last state change."""
    reason: str
    """Why: 'ok', 'timeout', 'refused', 'status_503', 'tls_error', ..."""
    latency: float | None = None
    last_ok: bool | None = None
    """Result of the most recent single check (before hysteresis)."""
    checked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Leadership:
    """Election verdict for one group on this appliance."""

    group: str
    leader: bool
    since: float
    priority: int = 0
    """Effective priority (after self-health penalty)."""
    state: str = ""
    """Engine-specific state, e.g. VRRP 'master' / 'backup' / 'init'."""
    leader_id: str | None = None
    """Who leads, if known (a node name or an address)."""


@dataclass(frozen=True, slots=True)
class BgpAnnouncement:
    """One route the BGP speaker must announce (full-state setter element)."""

    prefix: IPNetwork
    next_hop: str = "self"
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    as_path_prepend: int = 0
    """How many times to prepend the local ASN."""
    peers: tuple[str, ...] = ()
    """Peer names to send to; empty means every peer whose family matches."""


@dataclass(frozen=True, slots=True)
class L2Vip:
    """A VIP this appliance must answer ARP/NDP for, on these interfaces."""

    address: IPAddress
    interfaces: tuple[str, ...]
    group: str = "default"


@dataclass(frozen=True, slots=True)
class PeerState:
    """BGP session state of one peer as the speaker sees it."""

    name: str
    address: str
    state: Literal["idle", "connecting", "up", "down", "disabled"]
    since: float
    reason: str = ""
    announced: int = 0
    detail: str = ""
    """One operator-facing sentence, e.g. why a session does not come up."""


@dataclass(frozen=True, slots=True)
class VipDecision:
    """What the reconciler decided for one service's VIP, and why."""

    service: str
    vip: IPAddress
    bgp: Reason
    l2: Reason
    healthy: int
    total: int
    leader: bool
    fail_open: bool = False
    backends: dict[str, Reason] = field(default_factory=dict, hash=False, compare=False)
