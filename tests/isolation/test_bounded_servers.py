"""The status API and the metrics endpoint stay bounded: busy, size limits, 404, timeouts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from speaker.api.metrics_http import MetricsServer
from speaker.api.server import ApiServer


async def settle(condition: object) -> None:
    """Poll `condition` (a counter of the server under test)."""
    for _ in range(500):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("server did not settle")


async def ask(sock: Path, payload: bytes) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(payload)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return dict(json.loads(line))


def test_api_answers_busy_instead_of_queueing(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    api = ApiServer(sock, max_concurrent=4)
    gate = asyncio.Event()

    async def slow(_args: dict[str, Any]) -> str:
        await gate.wait()
        return "done"

    async def ping(_args: dict[str, Any]) -> str:
        return "pong"

    api.register("slow", slow)
    api.register("ping", ping)

    async def scenario() -> None:
        server = asyncio.create_task(api.run())
        await settle(sock.exists)
        held = [asyncio.create_task(ask(sock, b'{"command": "slow"}\n')) for _ in range(4)]
        await settle(lambda: api.active == 4)
        busy = await asyncio.gather(*(ask(sock, b'{"command": "ping"}\n') for _ in range(20)))
        assert all(r == {"ok": False, "error": "busy"} for r in busy)
        gate.set()
        assert [r["result"] for r in await asyncio.gather(*held)] == ["done"] * 4
        assert (await ask(sock, b'{"command": "ping"}\n'))["result"] == "pong"
        big = b'{"command": "ping", "args": {"x": "' + b"a" * 200_000 + b'"}}\n'
        assert "too large" in (await ask(sock, big))["error"]
        assert (await ask(sock, b'["not", "an", "object"]\n'))["error"] == "bad request"
        server.cancel()

    asyncio.run(scenario())


async def http(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_metrics_serve_only_their_path_and_refuse_overload() -> None:
    registry = CollectorRegistry()
    Counter("eti_things", "things", registry=registry).inc()

    async def scenario() -> None:
        server = MetricsServer(registry, "127.0.0.1", 0, max_concurrent=2)
        await server.start()
        assert server.server is not None
        port = server.server.sockets[0].getsockname()[1]
        runner = asyncio.create_task(server.run())
        status, body = await http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 200
        assert b"eti_things_total 1.0" in body
        assert (await http(port, b"GET / HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await http(port, b"GET /metrics/../x HTTP/1.1\r\n\r\n"))[0] == 404
        assert (await http(port, b"POST /metrics HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await http(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20_000
                           + b"\r\n\r\n"))[0] == 431
        # two slow clients that never finish their request head hold both slots
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await settle(lambda: server.active == 2)
        assert (await http(port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 503
        for _r, w in idle:
            w.close()
        await settle(lambda: server.active == 0)
        many = await asyncio.gather(*(http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                                      for _ in range(50)))
        assert {s for s, _ in many} <= {200, 503}
        assert any(s == 200 for s, _ in many)
        runner.cancel()

    asyncio.run(scenario())
