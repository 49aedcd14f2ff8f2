"""Desired state pass after pass, recomputing only the services whose inputs changed.

`DesiredCache.compute()` returns what `compute_desired()` returns for the same
inputs (a unit test compares them), but it keeps, per config generation, each
service's part and the assembled tables. A pass looks at what changed since the
previous one (health verdicts, leadership per group, drains, appliance health,
shutdown, a drain or graceful-shutdown window running out) and recomputes just
those services; the result also names them (`Change.dirty`), so the planner can
compare only those between full resyncs. A new config object, a change of
appliance health or of shutdown, or an appliance drain recomputes everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from speaker.config import AppConfig
from speaker.model import BackendHealth, BgpAnnouncement, IPAddress, L2Vip, Leadership
from speaker.reconcile.desired import (
    Desired,
    ServicePart,
    assemble,
    client_interfaces,
    next_change,
    service_part,
)
from speaker.reconcile.inputs import ApplianceHealth, Drains
from speaker.reconcile.overlay import LayeredDict

K = TypeVar("K")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Change:
    """Which services a pass recomputed, with their parts before and after."""

    dirty: tuple[int, ...]
    """Indexes into config.services, sorted."""
    before: tuple[ServicePart, ...]
    after: tuple[ServicePart, ...]


class DesiredCache:
    """Per-service parts of the desired state for one config generation at a time."""

    def __init__(self) -> None:
        self.config: AppConfig | None = None
        self.full_computes = 0
        """How many passes recomputed every service (a test and the bench read it)."""
        self.services_computed = 0
        """How many service parts were computed in all (a test reads it)."""
        self._parts: list[ServicePart] = []
        self._index: dict[str, int] = {}
        self._groups: dict[str, list[int]] = {}
        self._by_vip: dict[IPAddress, list[int]] = {}
        self._deadline: dict[int, float] = {}
        self._health: Mapping[tuple[str, str], BackendHealth] = {}
        self._verdicts = _Verdicts()
        self._leadership: dict[str, Leadership | None] = {}
        self._drains = Drains()
        self._appliance = ApplianceHealth()
        self._shutting_down = False
        self._interfaces: tuple[str, ...] = ()
        self._desired: Desired | None = None
        self._bgp: dict[BgpAnnouncement, int] = {}
        self._l2: dict[L2Vip, int] = {}
        self._services: dict[ServiceKey, Service] = {}
        self._dests: LayeredDict[DestKey, Dest] = LayeredDict({})
        self._changed: set[str] = set()
        """Which tables the parts changed since the last Desired was made."""
        self._addresses: frozenset[IPAddress] = frozenset()

    def compute(self, config: AppConfig, health: Mapping[tuple[str, str], BackendHealth],
                leadership: Mapping[str, Leadership], drains: Drains, now: float, *,
                appliance: ApplianceHealth, shutting_down: bool
                ) -> tuple[Desired, Change | None]:
        """(desired state, the services that changed); None: everything was recomputed."""
        dirty = self._dirty(config, health, leadership, drains, now, appliance, shutting_down)
        if config is not self.config:
            self._adopt(config)
        self._health, self._drains = health, drains
        self._leadership = {g: leadership.get(g) for g in self._groups}
        self._appliance, self._shutting_down = appliance, shutting_down
        if dirty is None:
            self._verdicts.changed(health)  # the base the next pass compares with
            return self._rebuild(config, now), None
        if not dirty and self._desired is not None:
            return self._desired, Change((), (), ())
        before = tuple(self._parts[i] for i in dirty)
        for i in dirty:
            self._parts[i] = self._part(i, now)
        after = tuple(self._parts[i] for i in dirty)
        if any(b != a for b, a in zip(before, after, strict=True)):
            self._update(before, after)
            return self._desired_now(), Change(dirty, before, after)
        assert self._desired is not None  # noqa: S101 - made by _rebuild
        return self._desired, Change(dirty, before, after)

    def parts_of_vip(self, vip: IPAddress) -> list[ServicePart]:
        """The current parts of every service of one VIP (several ports: several)."""
        return [self._parts[i] for i in self._by_vip.get(vip, ())]

    # -- what changed ----------------------------------------------------------------

    def _dirty(self, config: AppConfig, health: Mapping[tuple[str, str], BackendHealth],
               leadership: Mapping[str, Leadership], drains: Drains, now: float,
               appliance: ApplianceHealth, shutting_down: bool) -> tuple[int, ...] | None:
        if (config is not self.config or appliance != self._appliance
                or shutting_down != self._shutting_down
                or drains.appliance != self._drains.appliance):
            return None
        names = {key[0] for key in self._verdicts.changed(health)}
        if drains != self._drains:
            names.update(_changed_keys(drains.services, self._drains.services))
            names.update(k[0] for k in _changed_keys(drains.backends, self._drains.backends))
        dirty = {self._index[n] for n in names if n in self._index}
        for group, indexes in self._groups.items():
            if leadership.get(group) != self._leadership.get(group):
                dirty.update(indexes)
        due = [i for i, t in self._deadline.items() if t <= now]
        dirty.update(due)
        return tuple(sorted(dirty))

    # -- computing -------------------------------------------------------------------

    def _part(self, i: int, now: float) -> ServicePart:
        config = self.config
        assert config is not None  # noqa: S101 - set by _rebuild before any part
        svc = config.services[i]
        self.services_computed += 1
        deadline = next_change(config, svc, self._health, self._drains, now)
        if deadline is None:
            self._deadline.pop(i, None)
        else:
            self._deadline[i] = deadline
        return service_part(config, svc, self._health, _LeadershipView(self._leadership),
                            self._drains, now, self._appliance, self._shutting_down,
                            self._interfaces)

    def _adopt(self, config: AppConfig) -> None:
        self.config = config
        self._index = {svc.name: i for i, svc in enumerate(config.services)}
        self._by_vip = {}
        for i, svc in enumerate(config.services):
            self._by_vip.setdefault(svc.vip, []).append(i)
        self._groups = {}
        for i, svc in enumerate(config.services):
            self._groups.setdefault(svc.group, []).append(i)
        self._interfaces = client_interfaces(config)

    def _rebuild(self, config: AppConfig, now: float) -> Desired:
        self.full_computes += 1
        self._deadline = {}
        self._parts = [self._part(i, now) for i in range(len(config.services))]
        desired = assemble(config, self._parts)
        # services of one VIP (several ports) want equal announcements: count them
        self._bgp, self._l2 = {}, {}
        for part in self._parts:
            if part.announcement is not None:
                _count(self._bgp, part.announcement, 1)
            if part.l2 is not None:
                _count(self._l2, part.l2, 1)
        self._services = dict(desired.ipvs.services)
        self._dests = LayeredDict(dict(desired.ipvs.dests))
        self._addresses = desired.addresses
        self._desired = desired
        return desired

    def _update(self, before: tuple[ServicePart, ...], after: tuple[ServicePart, ...]) -> None:
        for old, new in zip(before, after, strict=True):
            if old.announcement != new.announcement:
                self._changed.add("bgp")
                if old.announcement is not None:
                    _count(self._bgp, old.announcement, -1)
                if new.announcement is not None:
                    _count(self._bgp, new.announcement, 1)
            if old.l2 != new.l2:
                self._changed.add("l2")
                if old.l2 is not None:
                    _count(self._l2, old.l2, -1)
                if new.l2 is not None:
                    _count(self._l2, new.l2, 1)
            if old.services != new.services:
                self._changed.add("services")
                for s in old.services:
                    self._services.pop(s.key, None)
                self._services.update((s.key, s) for s in new.services)
            if old.dests != new.dests:
                self._changed.add("dests")
                for d in old.dests:
                    self._dests.pop(d.key)
                for d in new.dests:
                    self._dests.set(d.key, d)

    def _desired_now(self) -> Desired:
        """A new Desired sharing every table that did not change (they are immutable);
        a changed one is copied in C, the dests get a layered view (O(changes))."""
        last, changed = self._desired, self._changed
        assert last is not None  # noqa: S101 - made by _rebuild
        ipvs = last.ipvs
        if "services" in changed or "dests" in changed:
            services = (MappingProxyType(dict(self._services)) if "services" in changed
                        else ipvs.services)
            ipvs = IpvsTable(services, self._dests.view() if "dests" in changed
                             else ipvs.dests)
        self._desired = Desired(
            tuple(p.decision for p in self._parts), self._addresses,
            frozenset(self._bgp) if "bgp" in changed else last.bgp,
            frozenset(self._l2) if "l2" in changed else last.l2, ipvs)
        self._changed = set()
        return self._desired


class _LeadershipView(Mapping[str, Leadership]):
    """The leadership seen by the last pass, per group of the config."""

    def __init__(self, groups: Mapping[str, Leadership | None]) -> None:
        self._groups = groups

    def __getitem__(self, group: str) -> Leadership:
        lead = self._groups.get(group)
        if lead is None:
            raise KeyError(group)
        return lead

    def __iter__(self):  # type: ignore[no-untyped-def]  # Mapping's own signature
        return (g for g, lead in self._groups.items() if lead is not None)

    def __len__(self) -> int:
        return sum(1 for lead in self._groups.values() if lead is not None)


class _Verdicts:
    """The last health snapshot as lists of keys and values, to find what changed.

    A health source that keeps the verdict objects it did not change (and the order
    of its keys) is compared in C: only slices holding other objects are looked at
    in Python. Otherwise every verdict is compared."""

    def __init__(self) -> None:
        self._snapshot: Mapping[tuple[str, str], BackendHealth] = {}
        self._keys: list[tuple[str, str]] = []
        self._values: list[BackendHealth] = []

    def changed(self, new: Mapping[tuple[str, str], BackendHealth]) -> list[tuple[str, str]]:
        """Keys whose verdict differs from the snapshot given last time."""
        old = self._snapshot
        if new is old:
            return []
        keys, values = list(new), list(new.values())
        if keys == self._keys:
            suspects: list[int] = []
            _differing(values, self._values, 0, len(values), suspects)
            changed = [keys[i] for i in suspects]
        else:
            changed = [k for k, v in new.items() if (p := old.get(k)) is not v and p != v]
            changed += [k for k in old if k not in new]
        self._snapshot, self._keys, self._values = new, keys, values
        return changed


def _differing(new: list[BackendHealth], old: list[BackendHealth], lo: int, hi: int,
               out: list[int]) -> None:
    """Indexes in [lo, hi) where the lists differ: halves that compare equal (in C, the
    same objects at once) are skipped, so k changes cost about k * log(n) slices."""
    if new[lo:hi] == old[lo:hi]:
        return
    if hi - lo <= 16:
        out.extend(i for i in range(lo, hi) if new[i] != old[i])
        return
    mid = (lo + hi) // 2
    _differing(new, old, lo, mid, out)
    _differing(new, old, mid, hi, out)


def _changed_keys(new: Mapping[K, float], old: Mapping[K, float]) -> set[K]:
    keys = set(new) ^ set(old)
    keys.update(k for k in new if k in old and new[k] != old[k])
    return keys


def _count(counts: dict[T, int], item: T, delta: int) -> None:
    left = counts.get(item, 0) + delta
    if left > 0:
        counts[item] = left
    else:
        counts.pop(item, None)
