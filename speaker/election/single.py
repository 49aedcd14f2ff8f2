"""Engine `single`: one appliance, always the leader of every group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from speaker.config import AppConfig
from speaker.election.base import Verdicts
from speaker.model import L2Vip, Leadership
from speaker.seams import Wake


class SingleElection:
    """Leader of every configured group; a penalty is reported but changes nothing
    (there is nobody to hand over to)."""

    def __init__(self, config: AppConfig, wake: Wake, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._verdicts = Verdicts(wake, clock)
        self._penalty = 0
        self._penalty_reason = ""
        self._config = config
        self._publish()

    def _publish(self) -> None:
        names = {g.name for g in self._config.election.groups}
        for group in self._config.election.groups:
            self._verdicts.update(group.name, True, state="single",
                                  priority=max(1, group.priority - self._penalty),
                                  leader_id=self._config.node.name)
        for gone in set(self._verdicts.snapshot()) - names:
            self._verdicts.drop(gone)

    async def run(self) -> None:
        """Nothing to do: wait for cancellation."""
        await asyncio.Event().wait()

    def reconfigure(self, config: AppConfig) -> None:
        """Lead exactly the groups of the new config."""
        self._config = config
        self._publish()

    def status(self) -> dict[str, object]:
        """Engine, penalty and verdicts."""
        return {"engine": "single", "penalty": self._penalty,
                "penalty_reason": self._penalty_reason,
                "groups": {g: {"leader": v.leader, "state": v.state, "priority": v.priority}
                           for g, v in sorted(self.leadership().items())}}

    def leadership(self) -> Mapping[str, Leadership]:
        """Leader of every group."""
        return self._verdicts.snapshot()

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Record the self-health penalty (shown in status and priority)."""
        self._penalty, self._penalty_reason = penalty, reason
        self._publish()

    async def resign(self, group: str | None = None) -> None:
        """Nobody to hand over to: leadership stays (documented no-op)."""
        del group

    def reclaim(self, group: str | None = None) -> None:
        """No-op (see resign)."""
        del group

    def handing_over(self, vip: L2Vip) -> bool:
        """Never: there is no other appliance to hand over to."""
        del vip
        return False

    def resolve_conflict(self, vip: L2Vip, other_mac: str) -> bool:
        """A single appliance never yields: a duplicate owner is a misconfiguration
        elsewhere; it is logged and counted by the responder."""
        del vip, other_mac
        return False
