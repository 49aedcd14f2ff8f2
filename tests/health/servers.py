"""Real servers for the lab tests, each run on an NsLoop in a backend namespace.

An HTTP(S) server whose behaviour a test switches (ok, 503, hang, close, huge
body, wrong body, chunked), a TCP listener that can be closed (refused) and
reopened, a line server for send/expect checks, and a small dnspython-based
DNS server (UDP and TCP).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections import Counter

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

HUGE_BODY_BYTES = 1 << 30


class HttpServer:
    """HTTP/1.1 server with a switchable `mode`; counts responses per mode."""

    def __init__(self, host: str | None, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.mode = "ok"
        self.served: Counter[str] = Counter()
        self.requests: list[dict[str, str]] = []
        self.sni: list[str | None] = []
        self._server: asyncio.Server | None = None
        if tls is not None:
            tls.sni_callback = self._on_sni

    def _on_sni(self, sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        self.sni.append(name)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  ssl=self.tls, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        try:
            if mode in ("close", "banner"):
                if mode == "banner":  # speaks plain HTTP at once, whatever the client says
                    writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                    await writer.drain()
                self.served[mode] += 1
                return
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            req = {"request": lines[0]} | {
                k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            self.requests.append(req)
            self.served[mode] += 1  # counted before the reply leaves: a client that
            await self._respond(mode, writer)  # has seen it always finds it counted
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()

    async def _respond(self, mode: str, writer: asyncio.StreamWriter) -> None:
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nhealthy" % HUGE_BODY_BYTES)
            block = b"x" * 65536
            for _ in range(HUGE_BODY_BYTES // len(block)):
                writer.write(block)
                await writer.drain()
            return
        if mode == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\nheal\r\n3\r\nthy\r\n0\r\n\r\n")
            await writer.drain()
            return
        status, body = {"ok": (200, b"healthy"), "503": (503, b"busy"),
                        "mismatch": (200, b"degraded")}[mode]
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (status, len(body), body))
        await writer.drain()


class TcpListener:
    """Accepts and closes connections while open; refused while closed."""

    def __init__(self, host: str | None, port: int, reply: bytes | None = None) -> None:
        self.host, self.port, self.reply = host, port, reply
        self._server: asyncio.Server | None = None
        self.accepted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            if self.reply is not None:
                async with asyncio.timeout(2):
                    line = await reader.readline()
                    writer.write(self.reply if line.strip() == b"PING" else b"WHAT?\r\n")
                    await writer.drain()
        writer.transport.abort()


class DnsServer:
    """Answers A queries for `records`; NXDOMAIN otherwise; `mode='servfail'` to fail."""

    def __init__(self, host: str, port: int, records: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.records = {k.rstrip(".") + ".": v for k, v in records.items()}
        self.mode = "ok"
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text()
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", self.records[name]))
        return response.to_wire()

    async def start(self) -> None:
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                self.transport.sendto(server.answer(data), addr)  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            Udp, local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._handle_tcp, self.host, self.port,
                                               reuse_address=True)

    async def _handle_tcp(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            (size,) = struct.unpack("!H", await reader.readexactly(2))
            reply = self.answer(await reader.readexactly(size))
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
