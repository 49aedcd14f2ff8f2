"""In-memory fakes of every seam, for unit tests of the supervisor and reconciler.

They record what they were asked to do and let a test set their state; none
of them touches the kernel or the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from dataplane.connsync import ConnSyncState
from dataplane.ipvs.model import IpvsStats, IpvsTable, ServiceKey
from dataplane.ipvs.plan import Op as IpvsOp
from dataplane.ipvs.plan import apply_to_table
from dataplane.ipvs.syncd import DaemonOp, plan_daemons
from speaker.config import AppConfig
from speaker.model import (
    BackendHealth,
    BgpAnnouncement,
    IPAddress,
    IPNetwork,
    L2Vip,
    Leadership,
    PeerState,
)


class _Part:
    """Shared life cycle: run until cancelled, remember the last config."""

    def __init__(self, config: AppConfig | None = None) -> None:
        self.config = config
        self.running = False

    async def run(self) -> None:
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False

    def reconfigure(self, config: AppConfig) -> None:
        self.config = config

    def status(self) -> dict[str, object]:
        return {"fake": type(self).__name__}


class FakeHealth(_Part):
    """Health verdicts set by the test."""

    def __init__(self, config: AppConfig | None = None) -> None:
        super().__init__(config)
        self.verdicts: dict[tuple[str, str], BackendHealth] = {}

    def set(self, service: str, backend: str, up: bool, since: float = 0.0,
            reason: str = "") -> None:
        self.verdicts[(service, backend)] = BackendHealth(
            service, backend, up, since, reason or ("ok" if up else "timeout"))

    def snapshot(self) -> Mapping[tuple[str, str], BackendHealth]:
        return dict(self.verdicts)


class FakeElection(_Part):
    """Leadership set by the test; records penalties and resignations."""

    def __init__(self, config: AppConfig | None = None, leader: bool = True) -> None:
        super().__init__(config)
        self.leaders: dict[str, bool] = {}
        self.default_leader = leader
        self.penalty = 0
        self.resigned: list[str | None] = []

    def leadership(self) -> Mapping[str, Leadership]:
        groups = [g.name for g in self.config.election.groups] if self.config else ["default"]
        return {g: Leadership(g, self.leaders.get(g, self.default_leader), 0.0) for g in groups}

    def set_penalty(self, penalty: int, reason: str) -> None:
        self.penalty = penalty

    async def resign(self, group: str | None = None) -> None:
        self.resigned.append(group)

    def reclaim(self, group: str | None = None) -> None:
        self.resigned = [g for g in self.resigned if group is not None and g != group]


class FakeBgp(_Part):
    """Keeps the announced set; `fail` makes the next set() raise."""

    def __init__(self, config: AppConfig | None = None) -> None:
        super().__init__(config)
        self.current: frozenset[BgpAnnouncement] = frozenset()
        self.history: list[frozenset[BgpAnnouncement]] = []
        self.fail: Exception | None = None

    async def set(self, announcements: Collection[BgpAnnouncement]) -> None:
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        self.current = frozenset(announcements)
        self.history.append(self.current)

    def announced(self) -> frozenset[BgpAnnouncement]:
        return self.current

    def announced_to(self) -> Mapping[str, frozenset[BgpAnnouncement]]:
        return {}

    def accepted(self) -> frozenset[BgpAnnouncement]:
        return self.current

    def sessions(self) -> Mapping[str, PeerState]:
        return {}

    async def withdraw_all(self) -> None:
        await self.set(())


class FakeL2(_Part):
    """Keeps the owned set."""

    def __init__(self, config: AppConfig | None = None) -> None:
        super().__init__(config)
        self.current: frozenset[L2Vip] = frozenset()
        self.history: list[frozenset[L2Vip]] = []

    async def set(self, vips: Collection[L2Vip]) -> None:
        self.current = frozenset(vips)
        self.history.append(self.current)

    def owned(self) -> frozenset[L2Vip]:
        return self.current


class FakeDns(_Part):
    """Keeps the served names."""

    def __init__(self, config: AppConfig | None = None) -> None:
        super().__init__(config)
        self.serving: dict[str, IPAddress] = {}
        self.history: list[dict[str, IPAddress]] = []

    def set(self, serving: Mapping[str, IPAddress]) -> None:
        if dict(serving) != self.serving or not self.history:
            self.serving = dict(serving)
            self.history.append(self.serving)

    async def withdraw_all(self, limit: float) -> bool:
        self.set({})
        return True


class FakeAddresses:
    """VIP addresses in a set; with `ranges`, only those inside are listed (as the real
    VipAddresses does: an address outside every range is not managed)."""

    def __init__(self, ranges: Collection[IPNetwork] | None = None) -> None:
        self.present: set[IPAddress] = set()
        self.ranges = None if ranges is None else tuple(ranges)
        self.added: list[IPAddress] = []

    def set_ranges(self, ranges: Collection[IPNetwork]) -> None:
        self.ranges = tuple(ranges)

    def list(self) -> frozenset[IPAddress]:
        if self.ranges is None:
            return frozenset(self.present)
        return frozenset(a for a in self.present
                         if any(a.version == r.version and a in r for r in self.ranges))

    def add(self, address: IPAddress) -> None:
        self.added.append(address)
        self.present.add(address)

    def remove(self, address: IPAddress) -> None:
        self.present.discard(address)


class FakeForwarder:
    """An IPVS table in memory; ops applied with the dataplane's own table semantics."""

    def __init__(self, foreign: IpvsTable | None = None) -> None:
        self.table = foreign or IpvsTable()
        self.foreign = frozenset(self.table.services)
        self.applied: list[IpvsOp] = []
        self.stats = IpvsStats()
        self.dumps = 0
        self._known: IpvsTable | None = None

    def observe(self) -> IpvsTable:
        self.dumps += 1
        self._known = self.table
        return self.table

    def known(self) -> IpvsTable:
        return self._known if self._known is not None else self.observe()

    def owned(self, key: ServiceKey) -> bool:
        return key not in self.foreign

    def snapshot(self) -> tuple[IpvsTable, IpvsStats]:
        return self.table, self.stats

    def apply(self, ops: Sequence[IpvsOp]) -> None:
        self.applied.extend(ops)
        same = self._known is self.table  # as after a dump: one copy serves both
        self.table = apply_to_table(self.table, tuple(ops))
        if same:
            self._known = self.table
        elif self._known is not None:
            self._known = apply_to_table(self._known, tuple(ops))


class FakeConnSync:
    """Records the connection-sync state the reconciler asks for."""

    def __init__(self) -> None:
        self.state: ConnSyncState | None = None
        self.calls = 0
        self.fail: Exception | None = None

    def set(self, state: ConnSyncState, verify: bool = False) -> tuple[DaemonOp, ...]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        before = self.state.daemons if self.state is not None else frozenset()
        self.state = state
        return plan_daemons(state.daemons, before)
