"""HTTP and HTTPS checks: one request, judged by status, body and TLS.

Plain HTTP runs on a bare non-blocking socket; HTTPS on an asyncio TLS stream
with SNI, verifying the server by default (system CAs or `http.ca_bundle`).
When no body check is configured only the status line is read. A body is read
up to `max_body_bytes` (Content-Length, chunked or until close) and never to
the end beyond that, so a huge or endless body costs at most the cap.
Failures: `status_<code>`, `body_mismatch`, `bad_response`, `closed`,
`tls_error`, plus the connection reasons of every check.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

from speaker.config.health import HttpParams
from speaker.health.outcome import PASSED, CheckFailedError, Outcome
from speaker.health.probes import Probe
from speaker.health.probes.tcp import abort, connect, linger_zero
from speaker.health.targets import Target

_LINE_LIMIT = 8192
_HEADER_LIMIT = 65536
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})(?: |\r?$)")
_DEFAULT_PORT = {"http": 80, "https": 443}

Recv = Callable[[int], Awaitable[bytes]]


class _Reader:
    """Buffered line/byte reader over any `recv(n)` coroutine."""

    def __init__(self, recv: Recv) -> None:
        self._recv = recv
        self._buf = b""

    async def _fill(self) -> None:
        chunk = await self._recv(65536)
        if not chunk:
            raise EOFError
        self._buf += chunk

    async def line(self) -> bytes:
        """One line without its CRLF; `bad_response` when longer than the limit."""
        while (end := self._buf.find(b"\n")) < 0:
            if len(self._buf) > _LINE_LIMIT:
                raise CheckFailedError("bad_response", "line too long")
            await self._fill()
        line, self._buf = self._buf[:end], self._buf[end + 1:]
        return line.rstrip(b"\r")

    async def take(self, size: int) -> bytes:
        """Up to `size` bytes (fewer only at end of stream)."""
        while len(self._buf) < size:
            try:
                await self._fill()
            except EOFError:
                break
        data, self._buf = self._buf[:size], self._buf[size:]
        return data


@functools.lru_cache(maxsize=64)
def tls_context(verify: bool, ca_bundle: Path | None) -> ssl.SSLContext:
    """Client TLS context (cached: loading CA certificates costs milliseconds)."""
    if not verify:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=str(ca_bundle))
    return ssl.create_default_context()


def build_request(target: Target, params: HttpParams) -> bytes:
    """The request bytes (Host: `http.host`, else the backend's address and port)."""
    host = params.host
    if host is None:
        addr = f"[{target.address}]" if target.address.version == 6 else str(target.address)
        port = target.port
        host = addr if port in (None, _DEFAULT_PORT.get(target.kind)) else f"{addr}:{port}"
    lines = [f"{params.method} {params.path} HTTP/1.1", f"Host: {host}",
             "User-Agent: edge-speaker-health", "Accept: */*", "Connection: close"]
    if params.method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_headers(reader: _Reader) -> dict[bytes, bytes]:
    headers: dict[bytes, bytes] = {}
    total = 0
    while line := await reader.line():
        total += len(line)
        if total > _HEADER_LIMIT:
            raise CheckFailedError("bad_response", "headers too large")
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


async def _read_body(reader: _Reader, headers: dict[bytes, bytes], cap: int) -> bytes:
    """At most `cap` bytes of the body, decoded from chunked if needed."""
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        body = b""
        while len(body) < cap:
            size_line = (await reader.line()).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise CheckFailedError("bad_response", "bad chunk size") from None
            if size == 0:
                break
            body += await reader.take(min(size, cap - len(body)))
            if len(body) < cap:
                await reader.take(2)  # CRLF after the chunk
        return body
    length = headers.get(b"content-length")
    if length is not None and length.isdigit():
        return await reader.take(min(int(length), cap))
    return await reader.take(cap)


async def judge_response(reader: _Reader, params: HttpParams) -> Outcome:
    """Read and judge one response (status, then body if a body check is set)."""
    status_line = await reader.line()
    match = _STATUS.match(status_line)
    if match is None:
        raise CheckFailedError("bad_response", status_line[:80].decode(errors="replace"))
    status = int(match.group(1))
    if not params.accepts(status):
        raise CheckFailedError(f"status_{status}")
    if params.body is None and params.body_regex is None:
        return PASSED
    headers = await _read_headers(reader)
    body = b"" if params.method == "HEAD" else await _read_body(
        reader, headers, params.max_body_bytes)
    if params.body is not None and params.body.encode() not in body:
        raise CheckFailedError("body_mismatch", f"{len(body)} bytes read, substring not found")
    if params.body_regex is not None and not re.search(params.body_regex,
                                                        body.decode(errors="replace")):
        raise CheckFailedError("body_mismatch", f"{len(body)} bytes read, regex did not match")
    return PASSED


def http_probe(target: Target) -> Probe:
    """Probe for an `http` or `https` check."""
    params = target.check.http_params()
    request = build_request(target, params)
    tls = target.kind == "https"
    context = tls_context(params.tls_verify, params.ca_bundle) if tls else None
    server_name = params.sni or params.host or (str(target.address) if tls else None)

    async def plain() -> Outcome:
        sock = await connect(target)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, request)
            return await judge_response(_Reader(functools.partial(loop.sock_recv, sock)), params)
        finally:
            abort(sock)

    async def secure() -> Outcome:
        sock = await connect(target)
        linger_zero(sock)
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=server_name)
        except BaseException:
            abort(sock)
            raise
        try:
            writer.write(request)
            await writer.drain()
            return await judge_response(_Reader(reader.read), params)
        finally:
            writer.transport.abort()

    return secure if tls else plain


__all__ = ["build_request", "http_probe", "judge_response", "tls_context"]
