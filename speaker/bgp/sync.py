"""Keeping ExaBGP's routes equal to the desired set, over the live bridge.

`RibSync` is the only writer to the bridge. It holds the desired set and, per
peer, what ExaBGP acknowledged (`ribs`: ExaBGP's adj-rib-out, which it sends
when the session is established) and, apart from that, what was acknowledged
while the session was established (`sent`: what the router has been sent;
emptied when the session goes down). Each pass sends the difference (withdrawals,
then announcements), replays the full set plus End-of-RIB for sessions that
just came up, and after a new bridge connection asks which sessions are
established and re-announces everything (a respawned API process gets no `up`
event, and commands whose ack was lost may or may not have been applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from speaker.bgp import commands as cmd
from speaker.bgp.channel import BridgeConnection, ConnectionLostError, Reply
from speaker.bgp.events import established_from_summary
from speaker.bgp.metrics import ANNOUNCED_PREFIXES, UPDATES
from speaker.bgp.plan import desired_for, diff, sort_key
from speaker.bgp.sessions import SessionTable
from speaker.model import BgpAnnouncement, IPNetwork
from speaker.seams import Wake


class RibSync:
    """Desired routes, acknowledged routes per peer, and the worker between them."""

    def __init__(self, sessions: SessionTable, wake: Wake, clock: Callable[[], float],
                 local_asn: Callable[[], int]) -> None:
        self._sessions = sessions
        self._wake = wake
        self._clock = clock
        self._local_asn = local_asn
        self.desired: frozenset[BgpAnnouncement] = frozenset()
        self.ribs: dict[str, dict[IPNetwork, BgpAnnouncement]] = {
            name: {} for name in sessions.peers}
        """Per peer: what ExaBGP acknowledged (its outgoing RIB, session up or not)."""
        self.sent: dict[str, dict[IPNetwork, BgpAnnouncement]] = {
            name: {} for name in sessions.peers}
        """Per peer: acknowledged while the session was established (the router has it)."""
        self.rejected: set[BgpAnnouncement] = set()
        """Desired announcements ExaBGP answered `error` to (retried on the next set())."""
        self.last_withdraw = float("-inf")
        """Clock time of the last acknowledged withdrawal."""
        self.clean = False
        """The last pass sent the current desired set without an error ack."""
        self._replay: set[str] = set()
        self._resync_all = False
        self._generation = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._kick = asyncio.Event()
        self._errors = 0
        self.conn: BridgeConnection | None = None

    # -- inputs ---------------------------------------------------------------------------

    def connected(self) -> bool:
        """A bridge connection is live."""
        return self.conn is not None and not self.conn.closed.is_set()

    async def set_desired(self, wanted: frozenset[BgpAnnouncement]) -> None:
        """Adopt a new desired set; wait for the pass that sends it (not while
        ExaBGP is away: the set goes out when the bridge connects)."""
        self.desired = wanted
        self._generation += 1
        self.clean = False
        if not self.connected():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._generation, future))
        self._kick.set()
        await future

    def on_connect(self, conn: BridgeConnection) -> None:
        """A (new) bridge connected: resynchronise everything over it."""
        self.conn = conn
        self._resync_all = True
        self.clean = False
        self._kick.set()

    def session_up(self, name: str) -> None:
        """A session came up: nothing is sent on it yet; replay its full set,
        then End-of-RIB."""
        self._forget_sent(name)
        self._replay.add(name)
        self._kick.set()

    def session_down(self, name: str) -> None:
        """A session went down: the router no longer has what was sent."""
        self._forget_sent(name)

    def _forget_sent(self, name: str) -> None:
        if name in self.sent:
            self.sent[name] = {}
        ANNOUNCED_PREFIXES.labels(name).set(0)

    def peers_changed(self) -> None:
        """The peer list changed (config): keep the RIBs of the peers that stay."""
        self.ribs = {name: self.ribs.get(name, {}) for name in self._sessions.peers}
        self.sent = {name: self.sent.get(name, {}) for name in self._sessions.peers}

    def exabgp_gone(self) -> None:
        """ExaBGP exited: its RIB died with it; nobody waits for acks any more."""
        self.clean = False
        for name in self.ribs:
            self.ribs[name] = {}
            self._forget_sent(name)
        if self.conn is not None:
            self.conn.close()
        self._release_waiters()

    def announced(self) -> frozenset[BgpAnnouncement]:
        """Announcements sent to at least one peer over an established session."""
        return frozenset(a for rib in self.sent.values() for a in rib.values())

    def accepted(self) -> frozenset[BgpAnnouncement]:
        """The desired set minus what ExaBGP refused: what this worker will keep
        delivering (while a session is down or ExaBGP away, it follows later)."""
        return self.desired - self.rejected

    # -- worker ---------------------------------------------------------------------------

    def _release_waiters(self, upto: int | None = None) -> None:
        keep = []
        for gen, fut in self._waiters:
            if upto is None or gen <= upto:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((gen, fut))
        self._waiters = keep

    async def run(self) -> None:
        """Sync whenever kicked, until cancelled."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            conn = self.conn
            if conn is None or conn.closed.is_set():
                self._release_waiters()
                continue
            generation = self._generation
            self._errors = 0
            try:
                await self._sync(conn)
            except ConnectionLostError:
                self.clean = False
                self._release_waiters()
                continue
            self.clean = self._errors == 0 and generation == self._generation
            self._release_waiters(generation)

    async def _sync(self, conn: BridgeConnection) -> None:
        full: set[str] = set()
        if self._resync_all:
            self._resync_all = False
            await self._refresh_sessions(conn)
            full = set(self._sessions.peers)
        replay, self._replay = self._replay, set()
        commands: list[cmd.Command] = []
        for name, peer in self._sessions.peers.items():
            desired = desired_for(peer, self.desired)
            rib = self.ribs.setdefault(name, {})
            withdraw, announce = diff(desired, rib)
            if name in full or name in replay:
                announce = tuple(sorted(desired.values(), key=sort_key))
            commands += cmd.withdraw_commands(name, str(peer.address), (rib[p] for p in withdraw))
            commands += cmd.announce_commands(name, str(peer.address), announce,
                                              local_asn=self._local_asn(), ibgp=peer.ibgp)
        try:
            await self._send(conn, commands)
        except ConnectionLostError:
            self._replay |= replay
            raise
        await self._end_of_rib(conn, sorted(replay))
        self.rejected &= self.desired
        for name, rib in self.sent.items():
            ANNOUNCED_PREFIXES.labels(name).set(len(rib))

    async def _refresh_sessions(self, conn: BridgeConnection) -> None:
        """After a (re)connection: which sessions are established? A respawned API
        process gets no `up` event, and a `down` may have been lost meanwhile."""
        before = dict(self._sessions.events)
        reply = await conn.barrier(cmd.SUMMARY.line)
        established = established_from_summary(list(reply.lines))
        for name, peer in self._sessions.peers.items():
            if self._sessions.events.get(name, 0) != before.get(name, 0):
                # an event arrived while the summary was being made (ExaBGP builds it
                # over several reactor turns): the event is at least as new; trust it
                self._replay.add(name)
                continue
            if peer.address not in established:
                if self._sessions.mark_not_established(name):
                    self.session_down(name)
                    self._wake("bgp_session_down")
                continue
            if self._sessions.mark_up(name):
                self._forget_sent(name)
                self._wake("bgp_session_up")
            self._replay.add(name)  # End-of-RIB may have been lost with the old bridge

    async def _end_of_rib(self, conn: BridgeConnection, names: list[str]) -> None:
        """End-of-RIB per family to each (still established) peer; what the
        connection loss leaves unsent is sent over the next one."""
        try:
            while names:
                peer = self._sessions.peers.get(names[0])
                if peer is not None and self._sessions.is_up(names[0]):
                    for family in peer.families:
                        eor = cmd.eor_command(peer.name, str(peer.address), family)
                        reply = await conn.barrier(eor.line)
                        UPDATES.labels(peer.name, "eor" if reply.ok else "error").inc()
                names.pop(0)
        except ConnectionLostError:
            self._replay.update(names)
            raise

    async def _send(self, conn: BridgeConnection, commands: list[cmd.Command]) -> None:
        futures: list[tuple[cmd.Command, asyncio.Future[Reply]]] = []
        try:
            for command in commands:
                futures.append((command, await conn.submit(command.line)))  # noqa: PERF401 - awaits
            for command, future in futures:
                reply = await conn.wait(future)
                self._apply(command, reply.ok)
        except ConnectionLostError:
            for command, future in futures:
                acked = future.done() and not future.cancelled() and future.exception() is None
                if not acked and command.kind == "announce":  # unknown outcome: assume it landed
                    self._apply(command, True, count=False)
            raise

    def _apply(self, command: cmd.Command, ok: bool, count: bool = True) -> None:
        rib = self.ribs.setdefault(command.peer, {})
        sent = self.sent.setdefault(command.peer, {})
        if not ok:
            self._errors += 1
            UPDATES.labels(command.peer, "error").inc(len(command.prefixes))
            if command.kind == "announce":
                self.rejected.update(command.announcements)
            return
        # acked while established: the UPDATE goes out in ExaBGP's next loop turn;
        # acked (or lost) otherwise: ExaBGP sends it when the session comes up, and
        # the replay on `up` acknowledges it again
        on_session = count and self._sessions.is_up(command.peer)
        if command.kind == "announce":
            for ann in command.announcements:
                rib[ann.prefix] = ann
                self.rejected.discard(ann)
                if on_session:
                    sent[ann.prefix] = ann
                else:
                    sent.pop(ann.prefix, None)
        elif command.kind == "withdraw":
            self.last_withdraw = self._clock()
            for prefix in command.prefixes:
                rib.pop(prefix, None)
                sent.pop(prefix, None)
        if count:
            UPDATES.labels(command.peer, command.kind).inc(len(command.prefixes))
