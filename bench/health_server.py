"""Benchmark backends: many listeners in one process (run inside a lab namespace).

    health_server.py HOST FIRST_PORT COUNT tcp|http

`tcp`: accept and close. `http`: answer one request with 200 and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import sys

_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


async def _tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(_REPLY)
        await writer.drain()
    writer.transport.abort()


async def main(host: str, first: int, count: int, mode: str) -> None:
    handler = _http if mode == "http" else _tcp
    for port in range(first, first + count):
        await asyncio.start_server(handler, host, port, backlog=64, reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
