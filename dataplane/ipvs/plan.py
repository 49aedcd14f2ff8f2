"""Plan an IPVS sync: the ops that turn the observed table into the desired one (pure).

``plan_ipvs(desired, observed, owned)`` compares two :class:`IpvsTable` values and
returns a sorted tuple of ops. It never touches a service that ``owned`` does not
claim: a foreign service (made by an operator, keepalived, kube-proxy...) is left
exactly as it is, dests included, even when the desired table names the same
key; :func:`ownership_conflicts` lists those collisions so the caller can report
them. A service that is owned and observed but not desired is deleted (the
kernel drops its dests with it). Draining (weight 0 before removal) is the
caller's policy: it keeps the dest in ``desired`` with weight 0 until its drain
time is over.

Ops are ordered by phase (add services, edit services, add dests, edit dests,
delete dests, delete services), then by key, so a plan is deterministic and can
be applied in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey

Owned = Callable[[ServiceKey], bool]


@dataclass(frozen=True, slots=True)
class AddService:
    service: Service
    phase = 0

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.service.key.sort_key())


@dataclass(frozen=True, slots=True)
class EditService:
    service: Service
    phase = 1

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.service.key.sort_key())


@dataclass(frozen=True, slots=True)
class AddDest:
    dest: Dest
    phase = 2

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.dest.key.sort_key())


@dataclass(frozen=True, slots=True)
class EditDest:
    dest: Dest
    phase = 3

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.dest.key.sort_key())


@dataclass(frozen=True, slots=True)
class DelDest:
    key: DestKey
    phase = 4

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.key.sort_key())


@dataclass(frozen=True, slots=True)
class DelService:
    key: ServiceKey
    phase = 5

    def sort_key(self) -> tuple[object, ...]:
        return (self.phase, self.key.sort_key())


Op = AddService | EditService | AddDest | EditDest | DelDest | DelService


def _sort_key(op: Op) -> tuple[object, ...]:
    return op.sort_key()


def plan_ipvs(desired: IpvsTable, observed: IpvsTable, owned: Owned) -> tuple[Op, ...]:
    """The sorted ops that make ``observed`` equal ``desired`` on owned services."""
    ops: list[Op] = []
    # Ownership is decided once per service, not once per dest.
    mine = {key: owned(key) for key in (*desired.services, *observed.services)}
    for key, want in desired.services.items():
        if not mine[key]:
            continue
        have = observed.services.get(key)
        if have is None:
            ops.append(AddService(want))
        elif have != want:
            ops.append(EditService(want))
    ops.extend(DelService(key) for key in observed.services
               if key not in desired.services and mine[key])
    for dkey, dest in desired.dests.items():
        if not mine[dkey.service]:
            continue
        current = observed.dests.get(dkey)
        if current is None:
            ops.append(AddDest(dest))
        elif current != dest:
            ops.append(EditDest(dest))
    ops.extend(DelDest(dkey) for dkey in observed.dests
               if dkey not in desired.dests and dkey.service in desired.services
               and mine[dkey.service])
    # Every entry that reaches an op is distinct, but comparing keys of different
    # families directly would raise: sort on the tuple keys.
    return tuple(sorted(ops, key=_sort_key))


def ownership_conflicts(desired: IpvsTable, owned: Owned) -> tuple[ServiceKey, ...]:
    """Desired services that the plan skips because ``owned`` does not claim them."""
    return tuple(sorted(
        (k for k in desired.services if not owned(k)), key=ServiceKey.sort_key,
    ))


K = TypeVar("K")
V = TypeVar("V")


def _copy(mapping: Mapping[K, V]) -> dict[K, V]:
    # dict(MappingProxyType) goes through keys() and __getitem__, hashing every key
    # again in Python (DestKey.__hash__): ~20 ms at 40,000 dests instead of ~0.5 ms.
    if isinstance(mapping, dict | MappingProxyType):
        return mapping.copy()
    return dict(mapping)


def apply_to_table(table: IpvsTable, ops: Iterable[Op]) -> IpvsTable:
    """The table that results from applying ``ops`` (what a perfect kernel would do).

    Copies the two dicts once (cheap even at 40,000 entries: a dict or a read-only
    view of one is cloned in C, keys keep their hashes); only a service delete scans
    the dests.
    """
    services = _copy(table.services)
    dests = _copy(table.dests)
    for op in ops:
        if isinstance(op, AddService | EditService):
            services[op.service.key] = op.service
        elif isinstance(op, AddDest | EditDest):
            if op.dest.key.service in services:
                dests[op.dest.key] = op.dest
        elif isinstance(op, DelDest):
            dests.pop(op.key, None)
        else:
            services.pop(op.key, None)
            for dkey in [k for k in dests if k.service == op.key]:
                del dests[dkey]
    return IpvsTable(MappingProxyType(services), MappingProxyType(dests))
