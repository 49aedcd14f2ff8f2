"""The Prometheus endpoint: GET /metrics only, bounded, on the supervisor's loop.

Replaces prometheus_client's threaded `start_http_server` (one thread per
scrape, any path served): here every path but `/metrics` is 404, methods
other than GET/HEAD are 405, a request head is at most 8 KiB and must arrive
within 5 s, at most `max_concurrent` scrapes are served at once (more get
503 "busy" at once), and concurrent scrapes share one rendering of the
registry (done in a worker thread so the loop keeps running).
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from speaker.logs import event_log

LOG = event_log(__name__)
MAX_HEAD = 8 * 1024
READ_TIMEOUT_S = 5.0
MAX_CONCURRENT = 16


class MetricsServer:
    """Serves `registry` at http://address:port/metrics."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int, *,
                 max_concurrent: int = MAX_CONCURRENT) -> None:
        self.registry = registry
        self.address = address
        self.port = port
        self.max_concurrent = max_concurrent
        self.active = 0
        self.refused = 0
        self._render: asyncio.Task[bytes] | None = None
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and listen (OSError if the port is taken)."""
        self.server = await asyncio.start_server(self._serve, self.address, self.port,
                                                 limit=MAX_HEAD, backlog=1024)
        LOG.info("metrics_listening", address=self.address, port=self.port)

    async def run(self) -> None:
        """Serve until cancelled."""
        if self.server is None:
            await self.start()
        server = self.server
        if server is None:  # start() failed to bind and raised; never reached
            return
        async with server:
            await server.serve_forever()

    async def _body(self) -> bytes:
        """One rendering shared by every scrape that arrives while it runs."""
        if self._render is None or self._render.done():
            self._render = asyncio.create_task(asyncio.to_thread(generate_latest,
                                                                 self.registry))
        return await asyncio.shield(self._render)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.active >= self.max_concurrent:
                self.refused += 1
                # read the head first: closing with unread data would reset the connection
                # before the client has read the answer
                with contextlib.suppress(TimeoutError, ValueError, asyncio.LimitOverrunError,
                                         asyncio.IncompleteReadError):
                    async with asyncio.timeout(0.2):
                        await reader.readuntil(b"\r\n\r\n")
                await self._reply(writer, 503, b"busy\n")
                return
            self.active += 1
            try:
                await self._handle(reader, writer)
            finally:
                self.active -= 1
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            LOG.debug("metrics_client_error", reason=type(exc).__name__)
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.LimitOverrunError, ValueError):
            await self._reply(writer, 431, b"request header too large\n")
            return
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) != 3:
            await self._reply(writer, 400, b"bad request\n")
            return
        method, target = request_line[0], request_line[1].split(b"?", 1)[0]
        if target != b"/metrics":
            await self._reply(writer, 404, b"not found: only /metrics is served\n")
            return
        if method not in (b"GET", b"HEAD"):
            await self._reply(writer, 405, b"method not allowed\n")
            return
        body = await self._body()
        await self._reply(writer, 200, body, CONTENT_TYPE_LATEST, head_only=method == b"HEAD")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes,
                     content_type: str = "text/plain; charset=utf-8", *,
                     head_only: bool = False) -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
        header = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        writer.write(header if head_only else header + body)
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
