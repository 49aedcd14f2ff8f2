"""What every election engine shares: the verdict table, metrics and wake-ups.

Engines (`single`, `vrrp`, later `etcd`) keep one `Leadership` per group in
a `Verdicts` table; `Verdicts.update()` records a change, moves the metrics
and wakes the reconciler. The etcd engine will map onto the same table:
campaign (lease + create-if-absent key) -> leader, observe (watch the key) ->
leader_id, resign (delete the key) -> `resign()`, lease loss -> not leader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from speaker.election import metrics as m
from speaker.logs import event_log
from speaker.model import L2Vip, Leadership
from speaker.seams import Election, Wake

LOG = event_log(__name__)


class ElectionEngine(Election, Protocol):
    """An Election plus the hooks the L2 announcer and operators use."""

    def resolve_conflict(self, vip: L2Vip, other_mac: str) -> bool:
        """Another MAC answers for `vip`: return True if this appliance should stop
        answering (the lower-priority side yields)."""
        ...

    def reclaim(self, group: str | None = None) -> None:
        """Undo `resign()`: preempt again as configured."""
        ...

    def handing_over(self, vip: L2Vip) -> bool:
        """True while `vip`'s group is being handed to another appliance (the L2 side
        then answers until the new owner announces)."""
        ...


class Verdicts:
    """Leadership per group, with change bookkeeping."""

    def __init__(self, wake: Wake, clock: Callable[[], float]) -> None:
        self._wake = wake
        self._clock = clock
        self._table: dict[str, Leadership] = {}

    def update(self, group: str, leader: bool, *, priority: int, state: str,
               leader_id: str | None = None, failover: float | None = None) -> None:
        """Record the verdict of `group`; log, count and wake on a change of leader."""
        old = self._table.get(group)
        m.PRIORITY.labels(group).set(priority)
        if old is not None and old.leader == leader:
            if (old.priority, old.state, old.leader_id) != (priority, state, leader_id):
                self._table[group] = replace(old, priority=priority, state=state,
                                             leader_id=leader_id)
                self._wake("leadership")
            return
        now = self._clock()
        self._table[group] = Leadership(group, leader, now, priority, state, leader_id)
        m.LEADER.labels(group).set(int(leader))
        if old is not None:
            m.LEADER_CHANGES.labels(group).inc()
        if failover is not None and leader:
            m.FAILOVER.observe(failover)
        if old is None and not leader:
            self._wake("leadership")  # starting as backup: nothing was lost, nothing to log
            return
        LOG.info("leader_gained" if leader else "leader_lost",
                 reason=state, group=group, priority=priority,
                 leader_id=leader_id or "", failover_s=failover)
        self._wake("leadership")

    def drop(self, group: str) -> None:
        """Forget a group that left the config."""
        if self._table.pop(group, None) is not None:
            m.LEADER.remove(group)
            self._wake("leadership")

    def snapshot(self) -> Mapping[str, Leadership]:
        """Current verdicts (a copy)."""
        return dict(self._table)
