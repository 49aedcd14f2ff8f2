"""Unit tests of the speaker's end of the bridge, against a scripted ExaBGP
talking over the real unix socket."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from pathlib import Path

import pytest

from speaker.bgp.channel import BridgeConnection, BridgeServer, ConnectionLostError
from speaker.bgp.events import StateEvent

UP = ('{"type": "state", "neighbor": {"address": {"local": "192.0.2.10", "peer": "192.0.2.1"},'
      ' "state": "up"}}')


async def serve(tmp_path: Path, ack_timeout: float = 5.0) -> tuple[
        BridgeServer, asyncio.Queue[BridgeConnection], list[StateEvent]]:
    """A server on tmp_path/b.sock; connections and state events are collected."""
    conns: asyncio.Queue[BridgeConnection] = asyncio.Queue()
    events: list[StateEvent] = []
    server = BridgeServer(tmp_path / "b.sock", conns.put_nowait, events.append,
                          ack_timeout=ack_timeout)
    await server.start()
    return server, conns, events


def test_acks_resolve_in_order_with_query_text_and_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, conns, events = await serve(tmp_path)
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "b.sock"))
        conn = await conns.get()
        replies = asyncio.ensure_future(conn.request_many(["announce a", "show neighbor summary",
                                                           "announce b"]))
        lines = [(await reader.readline()).decode().strip() for _ in range(3)]
        assert lines == ["announce a", "show neighbor summary", "announce b"]
        writer.write(f"done\n{UP}\nPeer AS\n192.0.2.1 65001 0:01 established 1 2\ndone\n"
                     "error\n".encode())
        got = await replies
        assert [r.ok for r in got] == [True, True, False]
        assert got[1].lines == ("Peer AS", "192.0.2.1 65001 0:01 established 1 2")
        assert events == [StateEvent(ip_address("192.0.2.1"), "up", "")]
        writer.close()
        await server.close()
    asyncio.run(scenario())


def test_barrier_waits_until_nothing_is_in_flight(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, conns, _ = await serve(tmp_path)
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "b.sock"))
        conn = await conns.get()
        first = await conn.submit("announce a")
        eor = asyncio.ensure_future(conn.barrier("announce eor ipv4 unicast"))
        assert (await reader.readline()).strip() == b"announce a"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.2)  # held back behind the first
        writer.write(b"done\n")
        assert (await first).ok
        assert (await reader.readline()).strip() == b"announce eor ipv4 unicast"
        writer.write(b"error\n")  # e.g. the peer went down meanwhile
        assert not (await eor).ok
        writer.close()
        await server.close()
    asyncio.run(scenario())


def test_lost_ack_closes_the_connection_and_fails_what_is_in_flight(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, conns, _ = await serve(tmp_path, ack_timeout=0.3)
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "b.sock"))
        conn = await conns.get()
        with pytest.raises(ConnectionLostError):
            await conn.request_many(["announce a", "announce b"])
        assert conn.closed.is_set()
        assert await reader.read() == b"announce a\nannounce b\n"  # then EOF: bridge exits
        with pytest.raises(ConnectionLostError):
            await conn.request("announce c")
        writer.close()
        await server.close()
    asyncio.run(scenario())


def test_bridge_disconnect_fails_pending_and_a_new_bridge_replaces_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, conns, _ = await serve(tmp_path)
        _, writer = await asyncio.open_unix_connection(str(tmp_path / "b.sock"))
        first = await conns.get()
        pending = asyncio.ensure_future(first.request("announce a"))
        await asyncio.sleep(0.05)
        writer.close()
        with pytest.raises(ConnectionLostError):
            await pending
        _, writer2 = await asyncio.open_unix_connection(str(tmp_path / "b.sock"))
        second = await conns.get()
        assert server.current is second
        assert not second.closed.is_set()
        writer2.close()
        await server.close()
        assert not (tmp_path / "b.sock").exists()
    asyncio.run(scenario())


def test_socket_is_private(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, _, _ = await serve(tmp_path)
        assert (tmp_path / "b.sock").stat().st_mode & 0o077 == 0
        await server.close()
    asyncio.run(scenario())
