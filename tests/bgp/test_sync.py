"""Unit tests of RibSync against a scripted ExaBGP on the real bridge socket:
replay and End-of-RIB, retry after an error ack, resynchronisation after a
lost connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from ipaddress import ip_address, ip_network
from pathlib import Path

from speaker.bgp.channel import BridgeServer
from speaker.bgp.events import StateEvent
from speaker.bgp.plan import Peer
from speaker.bgp.sessions import SessionTable
from speaker.bgp.sync import RibSync
from speaker.model import BgpAnnouncement

R1 = Peer("r1", ip_address("192.0.2.1"), 65001, ("ipv4-unicast",), False, False, 9.0)
A = BgpAnnouncement(ip_network("203.0.113.1/32"))
B = BgpAnnouncement(ip_network("203.0.113.2/32"))
SUMMARY = ["Peer            AS        up/down state       |     #sent     #recvd",
           "192.0.2.1       65001     0:00:03 established           0          0"]


class FakeExaBgp:
    """Reads the speaker's lines; answers each with `answer(line)` (lines to write)."""

    def __init__(self, answer: Callable[[str], list[str]]) -> None:
        self.answer = answer
        self.lines: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, path: Path) -> None:
        """Connect as the bridge would and start answering."""
        reader, self.writer = await asyncio.open_unix_connection(str(path))
        self._task = asyncio.create_task(self._serve(reader))

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        assert self.writer is not None
        while line := (await reader.readline()).decode().strip():
            self.lines.append(line)
            for out in self.answer(line):
                self.writer.write(out.encode() + b"\n")

    async def close(self) -> None:
        """Drop the connection (the bridge died)."""
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def established(line: str) -> list[str]:
    """ExaBGP with r1 established that accepts every command."""
    return [*SUMMARY, "done"] if line.startswith("show") else ["done"]


async def start(tmp_path: Path) -> tuple[RibSync, SessionTable, BridgeServer,
                                         asyncio.Task[None]]:
    """A RibSync worker behind a bridge server."""
    sessions = SessionTable([R1], lambda: 0.0)
    sync = RibSync(sessions, lambda _: None, lambda: 0.0, lambda: 65010)
    server = BridgeServer(tmp_path / "b.sock", sync.on_connect,
                          lambda e: sessions.on_event(e) and sync.session_up("r1"))
    await server.start()
    return sync, sessions, server, asyncio.create_task(sync.run())


async def settle(check: Callable[[], bool]) -> None:
    """Wait (bounded) until `check()` holds."""
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - polls state the code under test owns
            await asyncio.sleep(0.01)


async def stop(server: BridgeServer, task: asyncio.Task[None], *fakes: FakeExaBgp) -> None:
    """Tear everything down."""
    for fake in fakes:
        await fake.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await server.close()


def test_new_connection_resyncs_and_sends_end_of_rib(tmp_path: Path) -> None:
    async def scenario() -> None:
        sync, sessions, server, task = await start(tmp_path)
        await sync.set_desired(frozenset({A}))  # no bridge yet: returns at once
        fake = FakeExaBgp(established)
        await fake.connect(server.path)
        await settle(lambda: any("eor" in line for line in fake.lines))
        assert fake.lines == [
            "show neighbor summary",
            "neighbor 192.0.2.1 announce attributes next-hop self nlri 203.0.113.1/32",
            "neighbor 192.0.2.1 announce eor ipv4 unicast"]
        assert sessions.is_up("r1")
        assert sync.announced() == {A}
        assert sync.clean
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_session_up_replays_the_full_set_then_end_of_rib(tmp_path: Path) -> None:
    async def scenario() -> None:
        sync, _, server, task = await start(tmp_path)
        fake = FakeExaBgp(lambda line: ["done"])  # nobody established yet
        await fake.connect(server.path)
        await settle(lambda: len(fake.lines) >= 1)  # the resync's summary query
        await sync.set_desired(frozenset({A, B}))
        fake.lines.clear()
        assert fake.writer is not None
        fake.writer.write(b'{"type": "state", "neighbor": {"address": {"peer": "192.0.2.1"},'
                          b' "state": "up"}}\n')
        await settle(lambda: any("eor" in line for line in fake.lines))
        assert fake.lines == [
            "neighbor 192.0.2.1 announce attributes next-hop self nlri 203.0.113.1/32 "
            "203.0.113.2/32",
            "neighbor 192.0.2.1 announce eor ipv4 unicast"]
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_error_ack_is_retried_on_the_next_set(tmp_path: Path) -> None:
    async def scenario() -> None:
        sync, _, server, task = await start(tmp_path)
        refuse = [True]

        def answer(line: str) -> list[str]:
            if "announce attributes" in line and refuse[0]:
                return ["error"]
            return established(line)

        fake = FakeExaBgp(answer)
        await fake.connect(server.path)
        await settle(lambda: len(fake.lines) >= 1)
        await sync.set_desired(frozenset({A}))
        assert sync.announced() == frozenset()
        assert not sync.clean
        refuse[0] = False
        await sync.set_desired(frozenset({A}))  # the same set: sent again
        assert sync.announced() == {A}
        assert sync.clean
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_unacked_announce_is_withdrawn_after_reconnect_if_unwanted(tmp_path: Path) -> None:
    async def scenario() -> None:
        sync, _, server, task = await start(tmp_path)
        silent = FakeExaBgp(lambda line: [] if "attributes" in line else established(line))
        await silent.connect(server.path)
        await settle(lambda: len(silent.lines) >= 1)
        await settle(lambda: any("eor" in line for line in silent.lines))
        pending = asyncio.create_task(sync.set_desired(frozenset({A})))
        await settle(lambda: len(silent.lines) >= 3)  # sent, never acked
        await silent.close()  # the bridge dies with the announce in flight
        async with asyncio.timeout(5):
            await pending  # released, not stuck
        await sync.set_desired(frozenset({B}))  # A is no longer wanted
        fake = FakeExaBgp(established)
        await fake.connect(server.path)
        await settle(lambda: any("eor" in line for line in fake.lines))
        assert "neighbor 192.0.2.1 withdraw attributes next-hop self nlri 203.0.113.1/32" \
            in fake.lines
        assert sync.announced() == {B}
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_end_of_rib_lost_with_the_bridge_is_sent_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        _sync, sessions, server, task = await start(tmp_path)
        mute = FakeExaBgp(lambda line: [] if "eor" in line else established(line))
        await mute.connect(server.path)
        await settle(lambda: any("eor" in line for line in mute.lines))
        await mute.close()  # End-of-RIB in flight when the bridge dies
        fake = FakeExaBgp(established)
        await fake.connect(server.path)
        await settle(lambda: any("eor" in line for line in fake.lines))
        assert sessions.is_up("r1")
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_peer_missing_from_summary_is_marked_down(tmp_path: Path) -> None:
    async def scenario() -> None:
        _sync, sessions, server, task = await start(tmp_path)
        first = FakeExaBgp(established)
        await first.connect(server.path)
        await settle(lambda: sessions.is_up("r1"))
        await first.close()
        nobody = FakeExaBgp(lambda line: ["done"])  # summary lists no peer
        await nobody.connect(server.path)
        await settle(lambda: not sessions.is_up("r1"))
        session = sessions.get("r1")
        assert session is not None
        assert session.reason == "not_established"
        await stop(server, task, nobody)
    asyncio.run(scenario())


def test_up_event_during_the_summary_outranks_its_stale_answer(tmp_path: Path) -> None:
    """ExaBGP builds the summary over several reactor turns: the session can come up
    (and its `up` event be written) before the summary that says it is not."""
    up = b'{"type": "state", "neighbor": {"address": {"peer": "192.0.2.1"}, "state": "up"}}'

    def up_then_stale_summary(line: str) -> list[str]:
        if line.startswith("show"):
            return [up.decode(), SUMMARY[0], "done"]  # r1 not listed as established
        return ["done"]

    async def scenario() -> None:
        sync, sessions, server, task = await start(tmp_path)
        await sync.set_desired(frozenset({A}))
        fake = FakeExaBgp(up_then_stale_summary)
        await fake.connect(server.path)
        await settle(lambda: any("eor" in line for line in fake.lines))
        assert sessions.is_up("r1")
        await settle(lambda: sync.announced() == {A})
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_state_event_for_unknown_peer_is_ignored() -> None:
    sessions = SessionTable([R1], lambda: 0.0)
    assert sessions.on_event(StateEvent(ip_address("192.0.2.99"), "up")) is None
    assert not sessions.is_up("r1")


def test_announced_means_sent_on_an_established_session(tmp_path: Path) -> None:
    """Acked while the session is not up: held (accepted), not announced; the
    replay on `up` makes it announced; `down` forgets it again."""
    async def scenario() -> None:
        sessions = SessionTable([R1], lambda: 0.0)
        sync = RibSync(sessions, lambda _: None, lambda: 0.0, lambda: 65010)

        def on_state(event: StateEvent) -> None:
            if sessions.on_event(event) is None:
                return
            if event.state == "up":
                sync.session_up("r1")
            elif event.state == "down":
                sync.session_down("r1")

        server = BridgeServer(tmp_path / "b.sock", sync.on_connect, on_state)
        await server.start()
        task = asyncio.create_task(sync.run())
        fake = FakeExaBgp(lambda line: ["done"])  # nobody established yet
        await fake.connect(server.path)
        await settle(lambda: len(fake.lines) >= 1)
        await sync.set_desired(frozenset({A}))
        assert sync.ribs["r1"] == {A.prefix: A}, "ExaBGP holds it"
        assert sync.announced() == frozenset(), "but the router has not been sent it"
        assert sync.accepted() == {A}
        assert sync.clean
        assert fake.writer is not None
        state = (b'{"type": "state", "neighbor": {"address": {"peer": "192.0.2.1"},'
                 b' "state": "%s"}}\n')
        fake.writer.write(state % b"up")
        await settle(lambda: sync.announced() == {A})
        fake.writer.write(state % b"down")
        await settle(lambda: not sessions.is_up("r1"))
        assert sync.announced() == frozenset()
        assert sync.accepted() == {A}, "kept for the next session: no re-announce needed"
        await stop(server, task, fake)
    asyncio.run(scenario())


def test_a_session_that_goes_down_counts_one_flap() -> None:
    from speaker.metrics import REGISTRY

    peer = Peer("flappy", ip_address("192.0.2.7"), 65001, ("ipv4-unicast",), False, False, 9.0)
    sessions = SessionTable([peer], lambda: 0.0)

    def flaps() -> float | None:
        return REGISTRY.get_sample_value("speaker_bgp_session_flaps_total", {"peer": "flappy"})

    assert flaps() == 0
    sessions.on_event(StateEvent(peer.address, "connected"))
    assert flaps() == 0, "connecting is not a flap"
    sessions.on_event(StateEvent(peer.address, "up"))
    sessions.on_event(StateEvent(peer.address, "down", "peer reset"))
    sessions.on_event(StateEvent(peer.address, "down", "peer reset"))
    assert flaps() == 1
    sessions.set_peers([])
    assert flaps() is None
