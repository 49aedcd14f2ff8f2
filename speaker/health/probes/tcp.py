"""TCP checks: connect, optionally send a payload and match the reply.

Connect-only checks use bare non-blocking sockets on the event loop (no
stream objects: this is the hot path at thousands of checks per second) and
close with SO_LINGER 0, so the appliance keeps no TIME_WAIT sockets per check.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct

from speaker.health.outcome import PASSED, CheckFailedError, Outcome
from speaker.health.probes import Probe
from speaker.health.targets import Target

_LINGER_ZERO = struct.pack("ii", 1, 0)
EXPECT_READ_LIMIT = 4096
"""Bytes of reply read at most to match `tcp.expect`."""


async def connect(target: Target) -> socket.socket:
    """A connected non-blocking socket to the target (closed again on failure)."""
    if target.port is None:
        raise CheckFailedError("no_port", "no port to check (set health.port)")
    family = socket.AF_INET6 if target.address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (str(target.address), target.port))
    except BaseException:
        sock.close()
        raise
    return sock


def linger_zero(sock: socket.socket) -> None:
    """Make close() send a RST (no TIME_WAIT left on the appliance)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


def abort(sock: socket.socket) -> None:
    """Close with a RST."""
    linger_zero(sock)
    sock.close()


async def _read_until_match(sock: socket.socket, pattern: re.Pattern[bytes]) -> bool:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < EXPECT_READ_LIMIT:
        chunk = await loop.sock_recv(sock, EXPECT_READ_LIMIT - len(data))
        if not chunk:
            break
        data += chunk
        if pattern.search(data):
            return True
    return pattern.search(data) is not None


_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|[rnt0\\])")
_ESCAPES = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


def decode_payload(text: str) -> bytes:
    """`tcp.send` with the escapes \\r \\n \\t \\0 \\\\ \\xHH decoded (the config
    refuses raw control characters, so a line terminator is written as \\r\\n)."""
    out, pos = bytearray(), 0
    for match in _ESCAPE.finditer(text):
        out += text[pos:match.start()].encode()
        code = match.group(1)
        out += bytes([int(code[1:], 16)]) if code[0] == "x" else _ESCAPES[code]
        pos = match.end()
    out += text[pos:].encode()
    return bytes(out)


def tcp_probe(target: Target) -> Probe:
    """Probe for a `tcp` check."""
    params = target.check.tcp
    payload = decode_payload(params.send) if params and params.send else b""
    pattern = re.compile(params.expect.encode()) if params and params.expect else None

    async def probe() -> Outcome:
        sock = await connect(target)
        try:
            if payload:
                await asyncio.get_running_loop().sock_sendall(sock, payload)
            if pattern is not None and not await _read_until_match(sock, pattern):
                raise CheckFailedError("expect_mismatch", "reply did not match tcp.expect")
        finally:
            abort(sock)
        return PASSED

    return probe
