"""Raw IP sockets that carry VRRP (protocol 112) on one interface, IPv4 or IPv6.

The edge of the VRRP engine that touches the kernel. Sending uses a socket
bound to our source address (the checksum's pseudo-header needs it); receiving
uses an unbound socket tied to the interface and joined to 224.0.0.18 /
ff02::12 (a bound raw socket would only see unicast to that address). TTL /
hop limit 255 on both multicast and unicast; received adverts with anything
else are discarded (RFC 5798 7.1).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

from speaker.election.vrrp_packet import VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_PROTO, VRRP_TTL
from speaker.model import IPAddress

IPV6_CHECKSUM = 7
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
SO_BINDTODEVICE = 25


@dataclass(frozen=True, slots=True)
class Received:
    """One VRRP message as it arrived."""

    src: IPAddress
    dst: IPAddress
    ttl: int
    payload: bytes


def link_up(interface: str) -> bool:
    """Operational state of `interface` (carrier); unknown counts as up."""
    try:
        state = Path(f"/sys/class/net/{interface}/operstate").read_text().strip()
    except OSError:
        return False
    return state in ("up", "unknown")


def interface_address(interface: str, version: int) -> IPAddress | None:
    """Primary IPv4 address, or the IPv6 link-local address, of `interface`."""
    import fcntl

    if version == 4:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            raw = fcntl.ioctl(probe.fileno(), 0x8915,  # SIOCGIFADDR
                              struct.pack("256s", interface.encode()[:15]))
            return IPv4Address(raw[20:24])
        except OSError:
            return None
        finally:
            probe.close()
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[5] == interface and fields[3] == "20":  # link scope
            return IPv6Address(bytes.fromhex(fields[0]))
    return None


class VrrpSocket:
    """Send and receive VRRP on one interface for one address family."""

    def __init__(self, interface: str, version: int, source: IPAddress) -> None:
        self.interface = interface
        self.version = version
        self.source = source
        self.ifindex = socket.if_nametoindex(interface)
        family = socket.AF_INET if version == 4 else socket.AF_INET6
        self._tx = socket.socket(family, socket.SOCK_RAW, VRRP_PROTO)
        self._rx = socket.socket(family, socket.SOCK_RAW, VRRP_PROTO)
        try:
            self._setup(family)
        except OSError:
            self.close()
            raise

    def _setup(self, family: int) -> None:
        dev = self.interface.encode()
        for sock in (self._tx, self._rx):
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, dev)
            sock.setblocking(False)
        if family == socket.AF_INET:
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                struct.pack("4s4si", VRRP_GROUP_V4.packed, b"\0" * 4,
                                            self.ifindex))
            self._tx.bind((str(self.source), 0))
            self._rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                                struct.pack("4s4si", VRRP_GROUP_V4.packed, b"\0" * 4,
                                            self.ifindex))
        else:
            for sock in (self._tx, self._rx):
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            self._tx.bind((str(self.source), 0, 0, self.ifindex))
            self._rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                                VRRP_GROUP_V6.packed + struct.pack("@I", self.ifindex))
            self._rx.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            self._rx.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)

    def fileno(self) -> int:
        """The receive socket's descriptor (watch it for readability)."""
        return self._rx.fileno()

    def send(self, payload: bytes, dst: IPAddress) -> None:
        """Send one VRRP message to `dst` (the group or a unicast peer)."""
        if self.version == 4:
            self._tx.sendto(payload, (str(dst), 0))
        else:
            scope = self.ifindex if dst.is_link_local or dst.is_multicast else 0
            self._tx.sendto(payload, (str(dst), 0, 0, scope))

    def receive(self) -> Iterator[Received]:
        """Messages queued now (non-blocking)."""
        for _ in range(64):
            try:
                if self.version == 4:
                    packet, _addr = self._rx.recvfrom(2048)
                    got = self._parse_v4(packet)
                else:
                    data, ancdata, _flags, addr = self._rx.recvmsg(2048, 256)
                    got = self._parse_v6(data, ancdata, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ENETDOWN, errno.ENXIO):
                    return
                raise
            if got is not None:
                yield got

    @staticmethod
    def _parse_v4(packet: bytes) -> Received | None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return None
        ihl = (packet[0] & 0xF) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        return Received(IPv4Address(packet[12:16]), IPv4Address(packet[16:20]), packet[8],
                        packet[ihl:total])

    def _parse_v6(self, data: bytes, ancdata: list[tuple[int, int, bytes]],
                  addr: tuple[str, int, int, int]) -> Received | None:
        hops, dst = -1, VRRP_GROUP_V6
        for level, kind, value in ancdata:
            if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT:
                hops = struct.unpack("@i", value[:4])[0]
            elif level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO:
                dst = IPv6Address(value[:16])
        src = ip_address(addr[0].split("%")[0])
        return Received(src, dst, hops, data)

    def close(self) -> None:
        """Close both sockets."""
        self._tx.close()
        self._rx.close()
