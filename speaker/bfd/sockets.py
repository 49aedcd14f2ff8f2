"""UDP sockets of the BFD child: receivers on 3784/4784 that report the TTL, and one
sender per session from a source port in 49152-65535 with TTL / hop limit 255
(RFC 5881 section 4, RFC 5883 section 2)."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from dataclasses import dataclass
from ipaddress import ip_address

IP_RECVTTL = 12  # linux/in.h (not exported by Python's socket module)
SOURCE_PORTS = range(49152, 65536)
_TOS_NETWORK_CONTROL = 0xC0  # CS6, as FRR and BIRD send BFD
_INT = struct.Struct("i")


@dataclass(frozen=True, slots=True)
class Received:
    """One datagram from a receiver socket."""

    data: bytes
    source: str
    ttl: int
    """TTL (IPv4) or hop limit (IPv6) it arrived with; -1 when the kernel did not say."""


def family_of(address: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for a textual address."""
    return socket.AF_INET6 if ip_address(address).version == 6 else socket.AF_INET


def receiver(family: socket.AddressFamily, port: int) -> socket.socket:
    """A non-blocking socket bound to the wildcard address on `port`, reporting TTLs."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.bind(("::", port))
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def receive(sock: socket.socket) -> Received | None:
    """One datagram, or None when nothing is waiting."""
    try:
        data, ancillary, _flags, addr = sock.recvmsg(512, socket.CMSG_SPACE(_INT.size) * 2)
    except (BlockingIOError, InterruptedError):
        return None
    ttl = -1
    for level, kind, value in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL),
                             (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)) and len(value) >= 4:
            (ttl,) = _INT.unpack_from(value)
    source = addr[0].split("%", 1)[0]
    if source.startswith("::ffff:"):
        source = source[7:]
    return Received(data, source, ttl)


def sender(local: str | None, remote: str, *,
           choose: random.Random | None = None) -> socket.socket:
    """A non-blocking socket for one session: bound to `local` (or the wildcard) and
    a free source port in 49152-65535, TTL / hop limit 255."""
    family = family_of(remote)
    rng = choose or random.SystemRandom()
    for _ in range(64):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS,
                                    _TOS_NETWORK_CONTROL)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _TOS_NETWORK_CONTROL)
            sock.bind((local or ("::" if family == socket.AF_INET6 else "0.0.0.0"),
                       rng.choice(SOURCE_PORTS)))
        except OSError as exc:
            sock.close()
            if exc.errno == 98:  # EADDRINUSE: try another port
                continue
            raise
        sock.setblocking(False)
        return sock
    raise OSError("no free source port in 49152-65535")
