"""Pure rules of the etcd election: key layout, candidate ranking, preemption, margins.

Keys under the configured prefix, per group:
  PREFIX/GROUP/leader               value {"node", "priority"}, the holder's lease
  PREFIX/GROUP/candidates/NODE      value {"node", "priority", "preempt", "resigned"}
Every key an appliance writes is attached to its one lease, so a dead appliance's
keys all vanish together when the lease expires, and a graceful stop (lease
revoke) removes them at once.

Preference: candidates are ordered by effective priority (higher first), then by
node name. When the leader key is vacant, the candidate ranked n-th among the
live, non-resigned candidates campaigns after n x standby_delay, so the
preferred appliance wins when it is alive and a lower one still takes over when
it is not. A holder yields (steps down, then deletes its key) when a candidate
with a higher priority that has `preempt` set is registered: that is how a
preferred appliance asks the holder to resign.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from speaker.election.etcd_client import KeyValue


@dataclass(frozen=True, slots=True)
class Candidate:
    """One appliance competing for a group."""

    node: str
    priority: int
    preempt: bool = False
    resigned: bool = False

    def encode(self) -> bytes:
        """The value stored under the candidate key."""
        return json.dumps({"node": self.node, "priority": self.priority,
                           "preempt": self.preempt, "resigned": self.resigned},
                          sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def decode(raw: bytes) -> Candidate | None:
        """Parse a candidate value (None if it is not one)."""
        try:
            doc = json.loads(raw)
            return Candidate(str(doc["node"]), int(doc["priority"]), bool(doc.get("preempt")),
                             bool(doc.get("resigned")))
        except (ValueError, KeyError, TypeError):
            return None


def leader_key(prefix: str, group: str) -> str:
    """The key whose holder leads `group`."""
    return f"{prefix}/{group}/leader"


def candidate_key(prefix: str, group: str, node: str) -> str:
    """The key by which `node` registers as a candidate of `group`."""
    return f"{prefix}/{group}/candidates/{node}"


def leader_value(node: str, priority: int) -> bytes:
    """The value of a leader key."""
    return json.dumps({"node": node, "priority": priority}, sort_keys=True,
                      separators=(",", ":")).encode()


def holder_of(kv: KeyValue | None) -> str | None:
    """Node name stored in a leader key."""
    if kv is None:
        return None
    try:
        return str(json.loads(kv.value)["node"])
    except (ValueError, KeyError, TypeError):
        return kv.value.decode(errors="replace")


def _order(c: Candidate) -> tuple[int, str]:
    return (-c.priority, c.node)


def rank(me: Candidate, others: Iterable[Candidate]) -> int:
    """How many live, non-resigned candidates are preferred over `me` (0: the first)."""
    return sum(1 for c in others if c.node != me.node and not c.resigned
               and _order(c) < _order(me))


def should_yield(me: Candidate, others: Iterable[Candidate]) -> Candidate | None:
    """The candidate the holder `me` must hand over to, if any: a higher priority that
    asks for preemption."""
    better = [c for c in others if c.node != me.node and not c.resigned and c.preempt
              and c.priority > me.priority]
    return min(better, key=_order) if better else None


def step_down_at(renewal_sent: float, granted_ttl: int, margin: float) -> float:
    """When a leader must be silent: the server cannot expire the lease before
    `renewal_sent + granted_ttl` (it restarts the TTL when the renewal arrives, which
    is after it was sent), and `margin` keeps time for withdrawing announcements."""
    return renewal_sent + granted_ttl - margin


def failover_bound(ttl: int, renew_interval: float) -> float:
    """Worst-case time from a leader's death to the key's expiry on the server, plus
    one renewal interval for the standby's reaction: what the lab proves."""
    return ttl + renew_interval
