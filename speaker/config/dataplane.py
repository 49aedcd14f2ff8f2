"""The dataplane section: whether and how this appliance programs IPVS."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from speaker.config.base import Section
from speaker.config.errors import FieldValueError
from speaker.config.types import SafePath


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
    """Set the sysctls the forwarding modes need; `false`: only verify and report."""
    vip_interface: str = Field(default="lo", pattern=r"^[A-Za-z0-9_.-]{1,15}$")
    """Interface that carries the VIP addresses."""

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
