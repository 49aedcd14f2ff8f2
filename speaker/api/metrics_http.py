"""The Prometheus endpoint: GET /metrics only, bounded, on the supervisor's loop.

Replaces prometheus_client's threaded `start_http_server` (one thread per
scrape, any path served): here every path but `/metrics` is 404, methods
other than GET/HEAD are 405, a request head is at most 8 KiB and must arrive
within 5 s, at most `max_concurrent` scrapes are served at once (more get
503 "busy" at once), and concurrent scrapes share one rendering of the
registry (done in a worker thread so the loop keeps running).

With a web config file (`metrics.web_config_file`, the exporter-toolkit format, see
speaker.api.webconfig) the endpoint speaks TLS (optionally requiring client
certificates) and/or asks for basic auth; bcrypt checks run in a worker thread and a
verified (user, password) pair is remembered, so a scrape every few seconds costs one
hash comparison per new password, not one per scrape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import ssl

import bcrypt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from speaker.api.webconfig import WebConfig, WebConfigWatcher
from speaker.logs import event_log

LOG = event_log(__name__)
MAX_HEAD = 8 * 1024
READ_TIMEOUT_S = 5.0
MAX_CONCURRENT = 16
VERIFIED_CACHE = 64


class MetricsServer:
    """Serves `registry` at http://address:port/metrics."""

    def __init__(self, registry: CollectorRegistry, address: str, port: int, *,
                 max_concurrent: int = MAX_CONCURRENT,
                 web: WebConfigWatcher | None = None) -> None:
        self.registry = registry
        self.web = web
        self._verified: dict[bytes, None] = {}
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
                web = self._web_config()
                if web.tls is not None:
                    async with asyncio.timeout(READ_TIMEOUT_S):
                        await writer.start_tls(web.tls)
                await self._handle(reader, writer, web)
            finally:
                self.active -= 1
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError,
                ssl.SSLError) as exc:
            LOG.debug("metrics_client_error", reason=type(exc).__name__)
        finally:
            writer.close()

    def _web_config(self) -> WebConfig:
        if self.web is None:
            return WebConfig()
        web, error = self.web.refresh()
        if error is not None:
            LOG.error("metrics_web_config_rejected", reason="invalid_web_config", error=error,
                      detail="the last valid settings stay in force")
        return web

    @staticmethod
    def _credentials(head: bytes) -> tuple[bytes, bytes] | None:
        """(user, password) from an `Authorization: Basic` header, if there is one."""
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() != b"authorization":
                continue
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return None
            return user, password
        return None

    async def _authorized(self, head: bytes, web: WebConfig) -> bool:
        """Basic auth against the bcrypt hashes (no users configured: anyone)."""
        if not web.users:
            return True
        given = self._credentials(head)
        hashed = web.users.get(given[0].decode("utf-8", "replace")) if given else None
        if given is None or hashed is None:
            return False
        user, password = given
        key = hashlib.sha256(hashed + b"\0" + user + b"\0" + password).digest()
        if key in self._verified:
            return True
        ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed)
        if ok:
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.pop(next(iter(self._verified)))
            self._verified[key] = None
        return ok

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      web: WebConfig) -> None:
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
        if not await self._authorized(head, web):
            await self._reply(writer, 401, b"unauthorized\n",
                              extra='WWW-Authenticate: Basic realm="edge-speaker"\r\n')
            return
        body = await self._body()
        await self._reply(writer, 200, body, CONTENT_TYPE_LATEST, head_only=method == b"HEAD")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes,
                     content_type: str = "text/plain; charset=utf-8", *,
                     head_only: bool = False, extra: str = "") -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  405: "Method Not Allowed",
                  431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
        header = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                  f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode()
        writer.write(header if head_only else header + body)
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(READ_TIMEOUT_S):
                await writer.drain()
