"""Which BFD sessions a config asks for (pure), in the form the BFD child receives."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from speaker.bfd.session import Timers

if TYPE_CHECKING:
    from speaker.config import AppConfig

SINGLE_HOP_PORT = 3784
"""RFC 5881 destination port."""
MULTIHOP_PORT = 4784
"""RFC 5883 destination port."""


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One BFD session the appliance runs: a bgp peer with bfd enabled."""

    peer: str
    """bgp.peers[].name."""
    address: str
    """The router's address."""
    local: str | None
    """bgp.peers[].local_address (the source); None: the kernel chooses."""
    multihop: int | None
    """bgp.peers[].multihop: RFC 5883 on port 4784, TTL >= 256 - multihop accepted."""
    min_tx_ms: int
    min_rx_ms: int
    multiplier: int

    @property
    def port(self) -> int:
        """Destination UDP port of the session."""
        return MULTIHOP_PORT if self.multihop else SINGLE_HOP_PORT

    @property
    def min_ttl(self) -> int:
        """Lowest TTL / hop limit a received packet may carry (255 for single-hop)."""
        return 256 - self.multihop if self.multihop else 255

    @property
    def identity(self) -> tuple[str, str, str | None, int | None]:
        """What makes it the same session across a reload (timers may change live)."""
        return (self.peer, self.address, self.local, self.multihop)

    def timers(self) -> Timers:
        """The configured timers in microseconds."""
        return Timers(self.min_tx_ms * 1000, self.min_rx_ms * 1000, self.multiplier)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the channel."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSpec:
        """Inverse of to_json (the child side)."""
        return cls(peer=str(data["peer"]), address=str(data["address"]),
                   local=None if data.get("local") is None else str(data["local"]),
                   multihop=None if data.get("multihop") is None else int(data["multihop"]),
                   min_tx_ms=int(data["min_tx_ms"]), min_rx_ms=int(data["min_rx_ms"]),
                   multiplier=int(data["multiplier"]))


def sessions_from_config(config: AppConfig) -> tuple[SessionSpec, ...]:
    """Every session the config asks for, sorted by peer name."""
    if config.bgp is None:
        return ()
    return tuple(sorted((
        SessionSpec(peer=p.name, address=str(p.address),
                    local=None if p.local_address is None else str(p.local_address),
                    multihop=p.multihop, min_tx_ms=p.bfd.min_tx_ms, min_rx_ms=p.bfd.min_rx_ms,
                    multiplier=p.bfd.multiplier)
        for p in config.bgp.peers if p.bfd.enabled), key=lambda s: s.peer))


def uses_bfd(config: AppConfig) -> bool:
    """True when some BGP peer asks for BFD."""
    return bool(sessions_from_config(config))
