"""The dataplane section: whether and how this appliance programs IPVS."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.types import IfName, Name, Port, SafePath


class SyncConfig(Section):
    """The kernel's IPVS connection sync daemon (protocol v1), so that the appliance
    taking over a VIP knows the established connections and their backends."""

    enabled: bool = False
    role: Literal["follow-leader", "all"] = "follow-leader"
    """`follow-leader` (L2 pairs): master on the leader of `group`, backup on the
    others, switching live with the election. `all` (BGP ECMP): every appliance runs
    master and backup, so each one knows every flow any other one forwarded."""
    group: Name | None = None
    """Election group whose leader is the sync master; default: the first group."""
    interface: IfName | None = None
    """Interface the sync messages leave and arrive on (required when enabled)."""
    sync_id: int = Field(default=0, ge=0, le=255)
    """Shared by the appliances of one pair; another pair on the segment needs its own."""
    multicast_group: IPv4Address | IPv6Address = IPv4Address("224.0.0.81")
    """The kernel sends sync messages to a multicast group only (it refuses a unicast
    address); appliances must share a segment (or a tunnel) that carries it."""
    port: Port = 8848
    ttl: int = Field(default=1, ge=1, le=255)
    max_packet: int | None = Field(default=None, ge=256, le=65507)
    """UDP payload size of a sync message; default: derived from the interface MTU."""

    @model_validator(mode="after")
    def _check(self) -> SyncConfig:
        if self.enabled and self.interface is None:
            raise ValueError("sync.enabled needs sync.interface")
        if not self.multicast_group.is_multicast:
            raise ValueError(f"multicast_group {self.multicast_group} is not a multicast "
                             "address (the kernel's sync daemon sends to a group only)")
        return self


class DataplaneConfig(Section):
    """Kernel forwarding (IPVS) and the kernel state edge-speaker may touch."""

    ipvs: bool = True
    """Program IPVS. `false`: announce-only (another forwarder, or DR on the backends);
    the VIP still goes on `lo` so the appliance answers for it."""
    owned_ranges: list[IPv4Network | IPv6Network] = []
    """IPVS services whose VIP lies in these ranges belong to edge-speaker (besides the
    ones it recorded in `state_file`). Default: bgp.pools, else nothing extra."""
    owned_fwmarks: tuple[int, int] | None = None
    """Inclusive range of firewall marks that belong to edge-speaker."""
    state_file: SafePath = Path("/var/lib/edge-speaker/ipvs-owned")
    """Where edge-speaker records the IPVS services it programmed (ownership)."""
    manage_sysctls: bool = True
    """Set the sysctls the forwarding modes need (the table in dataplane/sysctl.py) at
    start and on reload; `false`: only verify and report. Checked on every resync either
    way (`speaker status`, `speaker_sysctl_mismatch`)."""
    keep_on_stop: bool = False
    """On a planned stop (SIGTERM) announcements are always withdrawn; then, after the
    longest drain_time, the VIP addresses and IPVS services are removed. `true`: leave
    them in place so the kernel keeps forwarding established connections."""
    vip_interface: str = Field(default="lo", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    """Interface that carries the VIP addresses."""
    sync: SyncConfig = SyncConfig()
    """Connection sync between appliances (docs/dataplane.md: which role per topology)."""
    sloppy_tcp: bool = False
    """`net.ipv4.vs.sloppy_tcp`: accept a TCP flow first seen mid-stream (not a SYN) and
    schedule it; with the `mh` scheduler a flow that ECMP moves to another appliance
    then reaches the same backend. For BGP ECMP pairs."""
    sloppy_sctp: bool = False
    """`net.ipv4.vs.sloppy_sctp`: the same for SCTP."""

    @field_validator("owned_ranges")
    @classmethod
    def _no_catch_all(cls, ranges: list[IPv4Network | IPv6Network]
                      ) -> list[IPv4Network | IPv6Network]:
        for i, net in enumerate(ranges):
            if net.prefixlen == 0:
                raise FieldValueError((i,), f"{net} would claim every IPVS service on the "
                                      "host (edge-speaker removes what it owns); list the VIP "
                                      "ranges")
        return ranges

    @model_validator(mode="after")
    def _check_marks(self) -> DataplaneConfig:
        if self.owned_fwmarks is not None:
            low, high = self.owned_fwmarks
            if not 1 <= low <= high <= 0xFFFFFFFF:
                raise FieldValueError(("owned_fwmarks",),
                                      "owned_fwmarks must be [low, high] with 1 <= low <= high")
        return self
