"""The Protocol seams between the supervisor and the parts it drives.

Each part runs as one task in the supervisor's TaskGroup (`async def run()`,
returns on cancellation), tells the reconciler that something changed by
calling the `wake` callback it was built with, and takes its orders as a full
desired state (`set(...)`), never as a stream of deltas: restarts and
reconnects are then trivial. `speaker.fakes` has an in-memory fake of each.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from dataplane.connsync import ConnSyncState
from dataplane.ipvs.model import IpvsStats, IpvsTable, ServiceKey
from dataplane.ipvs.plan import Op as IpvsOp
from dataplane.ipvs.syncd import DaemonOp
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

Wake = Callable[[str], None]
"""Called by a part with a short event name ('backend_down', 'session_up', ...);
the reconciler coalesces wake-ups, so calling it often is cheap."""


class Component(Protocol):
    """Common life cycle of every part."""

    async def run(self) -> None:
        """Do the part's work until cancelled; clean up on the way out."""
        ...

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new, already validated config without losing unchanged state."""
        ...

    def status(self) -> dict[str, object]:
        """JSON-ready detail for `speaker status`."""
        ...


class HealthSource(Component, Protocol):
    """The health checker: verdicts per (service, backend label)."""

    def snapshot(self) -> Mapping[tuple[str, str], BackendHealth]:
        """Current verdicts. A backend not yet checked is absent (counts as down
        unless its check type is `none`)."""
        ...


class Election(Component, Protocol):
    """Leader election per group (engines: single, vrrp, etcd)."""

    def leadership(self) -> Mapping[str, Leadership]:
        """Verdict per group name."""
        ...

    def set_penalty(self, penalty: int, reason: str) -> None:
        """Lower this appliance's priority (self-health), 0 to restore."""
        ...

    async def resign(self, group: str | None = None) -> None:
        """Planned handover: give up leadership of one group (None: all) now."""
        ...

    def reclaim(self, group: str | None = None) -> None:
        """Undo resign(): compete (and preempt, if configured) again."""
        ...


class BgpSpeaker(Component, Protocol):
    """The BGP half: ExaBGP under supervision."""

    async def set(self, announcements: Collection[BgpAnnouncement]) -> None:
        """Make exactly these routes announced (to peers whose family matches)."""
        ...

    def announced(self) -> frozenset[BgpAnnouncement]:
        """What routers have been sent: announcements acknowledged by ExaBGP
        while the session to at least one peer was established (forgotten when
        that session goes down). Status and metrics report this."""
        ...

    def announced_to(self) -> Mapping[str, frozenset[BgpAnnouncement]]:
        """`announced()` per peer name."""
        ...

    def accepted(self) -> frozenset[BgpAnnouncement]:
        """What the speaker holds and keeps delivering: the last `set()` minus
        what ExaBGP refused. A session that is down (or not up yet) gets it when
        it comes up, without another `set()`. The reconciler plans against this,
        so a VIP waiting for a session is not re-announced (or logged) on every
        resync; a refused one is (set() retries it)."""
        ...

    def sessions(self) -> Mapping[str, PeerState]:
        """Session state per peer name."""
        ...

    async def withdraw_all(self) -> None:
        """Withdraw every route and wait for the acks (planned stop)."""
        ...


class L2Announcer(Component, Protocol):
    """The L2 half: ARP/NDP responder plus GARP / unsolicited NA."""

    async def set(self, vips: Collection[L2Vip]) -> None:
        """Answer for exactly these VIPs; newly owned ones get GARP/NA at once."""
        ...

    def owned(self) -> frozenset[L2Vip]:
        """VIPs answered for now."""
        ...


class DnsRecords(Component, Protocol):
    """DNS records of announced VIPs (RFC 2136, in the background)."""

    def set(self, serving: Mapping[str, IPAddress]) -> None:
        """Serve exactly these names (name -> VIP), withdraw every other configured
        name. Never blocks: updates are sent by the part's own task."""
        ...

    async def withdraw_all(self, limit: float) -> bool:
        """Planned stop: withdraw every claim; True if all settled within `limit` s."""
        ...


class Hooks(Component, Protocol):
    """Operator commands on leadership and announcement changes."""

    def observe(self, leaders: frozenset[str], vips: Mapping[str, IPAddress]) -> None:
        """What is true now (groups led here; service -> VIP announced here). Never
        waits: commands run in the part's own task."""
        ...


class VipAddresses(Protocol):
    """VIP addresses on `lo` (kernel side, in dataplane/)."""

    def list(self) -> frozenset[IPAddress]:
        """VIPs present on lo that this appliance manages."""
        ...

    def add(self, address: IPAddress) -> None:
        """Add; already present is success."""
        ...

    def remove(self, address: IPAddress) -> None:
        """Remove; already absent is success."""
        ...

    def set_ranges(self, ranges: Collection[IPNetwork]) -> None:
        """Manage exactly the addresses inside these ranges from now on (a reload)."""
        ...


class ConnSync(Protocol):
    """IPVS connection sync daemons and the kernel settings for connection survival
    (dataplane/connsync.py). Blocking: run it in a thread."""

    def set(self, state: ConnSyncState, verify: bool = False) -> tuple[DaemonOp, ...]:
        """Make the kernel match ``state`` (full state); ``verify`` re-reads the kernel
        even if ``state`` is unchanged. Returns the daemon ops taken."""
        ...


class Forwarder(Protocol):
    """IPVS (kernel side, in dataplane/). Blocking calls: run them in a thread."""

    def observe(self) -> IpvsTable:
        """Dump the kernel's table (services and dests)."""
        ...

    def known(self) -> IpvsTable:
        """The table as last observed plus every op applied since (no dump); after a
        failed apply, or before any dump, the same as :meth:`observe`."""
        ...

    def owned(self, key: ServiceKey) -> bool:
        """True if edge-speaker may add, edit or delete this service."""
        ...

    def snapshot(self) -> tuple[IpvsTable, IpvsStats]:
        """Dump the table with the kernel's counters (for metrics and status)."""
        ...

    def apply(self, ops: Sequence[IpvsOp]) -> None:
        """Execute ops in order; EEXIST/ENOENT count as success."""
        ...
