"""The IPVS table as values: services, real servers (dests), their keys and stats.

Everything here is a frozen, slotted dataclass with ``ipaddress`` types, so that
desired and observed tables compare by value and the planner stays pure. Fields
the kernel changes by itself (connection counters, rates) live in :class:`Stats`
and :class:`DestStats`, never in :class:`Service` or :class:`Dest`, so equality
ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Literal

IPAddress = IPv4Address | IPv6Address
Protocol = Literal["tcp", "udp", "sctp", "fwmark"]
Method = Literal["nat", "dr", "tunnel"]
PROTOCOLS: tuple[Protocol, ...] = ("tcp", "udp", "sctp", "fwmark")
METHODS: tuple[Method, ...] = ("nat", "dr", "tunnel")
# Schedulers of Linux 6.1 (net/netfilter/ipvs/ip_vs_*.c); "twos" is 5.10+.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "fo", "ovf", "lblc", "lblcr", "dh", "sh", "sed",
              "nq", "mh", "twos")
# Scheduler flags: the kernel's IP_VS_SVC_F_SCHED1/2/3 bits, named as ipvsadm does.
SCHED_FLAGS = {
    "sh-fallback": 0x08, "sh-port": 0x10,
    "mh-fallback": 0x08, "mh-port": 0x10,
    "flag-1": 0x08, "flag-2": 0x10, "flag-3": 0x20,
}
_FLAG_NAMES = {
    "sh": {0x08: "sh-fallback", 0x10: "sh-port"},
    "mh": {0x08: "mh-fallback", 0x10: "mh-port"},
}
_GENERIC_FLAG_NAMES = {0x08: "flag-1", 0x10: "flag-2", 0x20: "flag-3"}
_UNSPECIFIED: dict[int, IPAddress] = {4: IPv4Address(0), 6: IPv6Address(0)}


def sched_flag_names(scheduler: str, bits: int) -> frozenset[str]:
    """Canonical names of the scheduler flag bits (``sh``/``mh`` name theirs)."""
    names = _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    return frozenset(
        names.get(bit, _GENERIC_FLAG_NAMES[bit]) for bit in (0x08, 0x10, 0x20) if bits & bit
    )


def _addr(value: IPAddress | str) -> IPAddress:
    return value if isinstance(value, IPv4Address | IPv6Address) else ip_address(value)


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """What identifies a virtual service in the kernel.

    For a firewall-mark service ``protocol`` is ``"fwmark"``, ``fwmark`` is the mark,
    ``address`` is the unspecified address of the family (``0.0.0.0`` or ``::``)
    and ``port`` is 0. Use :meth:`tcp`, :meth:`udp`, :meth:`of_fwmark` to build keys.
    """

    protocol: Protocol
    address: IPAddress
    port: int
    fwmark: int = 0
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __hash__(self) -> int:
        # Keys are hashed a lot (tens of thousands per sync); ipaddress hashes slowly.
        return self._hash

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(
            (self.protocol, self.address.version, int(self.address), self.port, self.fwmark)))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port out of range: {self.port}")
        if (self.protocol == "fwmark") != (self.fwmark > 0):
            raise ValueError("fwmark > 0 exactly when protocol is 'fwmark'")
        if self.protocol == "fwmark" and (self.port or not self.address.is_unspecified):
            raise ValueError("a fwmark service key has port 0 and an unspecified address")

    @classmethod
    def tcp(cls, address: IPAddress | str, port: int) -> ServiceKey:
        return cls("tcp", _addr(address), port)

    @classmethod
    def udp(cls, address: IPAddress | str, port: int) -> ServiceKey:
        return cls("udp", _addr(address), port)

    @classmethod
    def of_fwmark(cls, mark: int, family: Literal[4, 6] = 4) -> ServiceKey:
        return cls("fwmark", _UNSPECIFIED[family], 0, mark)

    @property
    def family(self) -> Literal[4, 6]:
        return 4 if isinstance(self.address, IPv4Address) else 6

    def sort_key(self) -> tuple[int, int, str, int, int]:
        return (self.family, int(self.address), self.protocol, self.port, self.fwmark)

    def __str__(self) -> str:
        if self.protocol == "fwmark":
            return f"fwmark:{self.fwmark}/ipv{self.family}"
        host = str(self.address) if self.family == 4 else f"[{self.address}]"
        return f"{self.protocol}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service: scheduler, its flags, persistence and one-packet scheduling.

    ``persistence`` is the persistence timeout in seconds (``None``: no client
    affinity); ``netmask`` is the prefix length that groups clients for persistence
    (32 or 128 means per client address).
    """

    key: ServiceKey
    scheduler: str = "wlc"
    sched_flags: frozenset[str] = frozenset()
    persistence: int | None = None
    netmask: int | None = None
    one_packet: bool = False

    def __post_init__(self) -> None:
        unknown = self.sched_flags - SCHED_FLAGS.keys()
        if unknown:
            raise ValueError(f"unknown scheduler flags {sorted(unknown)}")
        bits = 0
        for name in self.sched_flags:
            bits |= SCHED_FLAGS[name]
        object.__setattr__(self, "sched_flags", sched_flag_names(self.scheduler, bits))
        if self.persistence is not None and self.persistence <= 0:
            raise ValueError("persistence timeout must be positive (or None)")
        if self.netmask is None:
            object.__setattr__(self, "netmask", 32 if self.key.family == 4 else 128)
        max_len = 32 if self.key.family == 4 else 128
        min_len = 0 if self.key.family == 4 else 1  # the kernel refuses an IPv6 /0
        if not min_len <= (self.netmask if self.netmask is not None else -1) <= max_len:
            raise ValueError(f"netmask prefix length out of range: {self.netmask}")

    @property
    def flag_bits(self) -> int:
        """The kernel's service flags word (persistent 0x1, one-packet 0x4, sched bits)."""
        bits = 0x1 if self.persistence else 0
        bits |= 0x4 if self.one_packet else 0
        for name in self.sched_flags:
            bits |= SCHED_FLAGS[name]
        return bits


@dataclass(frozen=True, slots=True)
class DestKey:
    """A real server of one service: the service key plus the server's address and port."""

    service: ServiceKey
    address: IPAddress
    port: int
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __hash__(self) -> int:
        return self._hash

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash(
            (self.service._hash, self.address.version, int(self.address), self.port)))

    def sort_key(self) -> tuple[tuple[int, int, str, int, int], int, int, int]:
        family = 4 if isinstance(self.address, IPv4Address) else 6
        return (self.service.sort_key(), family, int(self.address), self.port)

    def __str__(self) -> str:
        host = str(self.address) if isinstance(self.address, IPv4Address) else f"[{self.address}]"
        return f"{self.service} -> {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Dest:
    """A real server: weight (0 = drain: no new connections), method, thresholds."""

    key: DestKey
    weight: int = 1
    method: Method = "nat"
    upper_threshold: int = 0
    lower_threshold: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown forwarding method {self.method!r}")
        if not 0 <= self.weight <= 0x7FFFFFFF:
            raise ValueError(f"weight out of range: {self.weight}")


@dataclass(frozen=True, slots=True)
class IpvsTable:
    """A whole IPVS table (desired or observed), indexed by key."""

    services: Mapping[ServiceKey, Service] = field(default_factory=dict)
    dests: Mapping[DestKey, Dest] = field(default_factory=dict)

    @classmethod
    def of(cls, services: Iterable[Service], dests: Iterable[Dest] = ()) -> IpvsTable:
        """Build a table; every dest's service must be among ``services``."""
        svc = {s.key: s for s in services}
        dst = {d.key: d for d in dests}
        orphans = [str(k) for k in dst if k.service not in svc]
        if orphans:
            raise ValueError(f"dests without a service: {orphans[:5]}")
        return cls(MappingProxyType(svc), MappingProxyType(dst))

    def dests_of(self, key: ServiceKey) -> list[Dest]:
        return [d for d in self.dests.values() if d.key.service == key]


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters of a service or dest since it was created (kernel ``stats64``)."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cps: int = 0
    bps_in: int = 0
    bps_out: int = 0


@dataclass(frozen=True, slots=True)
class DestStats:
    """A dest's live connection counts plus its counters."""

    active_connections: int = 0
    inactive_connections: int = 0
    persistent_connections: int = 0
    stats: Stats = Stats()


@dataclass(frozen=True, slots=True)
class IpvsStats:
    """Stats of every service and dest read in one dump (they lag up to ~2 s)."""

    services: Mapping[ServiceKey, Stats] = field(default_factory=dict)
    dests: Mapping[DestKey, DestStats] = field(default_factory=dict)
