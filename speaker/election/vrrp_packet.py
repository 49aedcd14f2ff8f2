"""VRRPv3 advertisements (RFC 5798 section 5): encode, decode, checksum.

Pure functions. The checksum covers a pseudo-header for both families
(RFC 5798 5.2.8; keepalived and routers do the same for IPv4): source,
destination, upper-layer length and protocol 112.

     0                   1                   2                   3
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    |(rsvd) |     Max Adver Int     |          Checksum             |
    |                       IPvX Address(es)                        |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from speaker.model import IPAddress

VRRP_PROTO = 112
VRRP_VERSION = 3
ADVERTISEMENT = 1
VRRP_GROUP_V4 = IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = IPv6Address("ff02::12")
VRRP_TTL = 255
_HEAD = struct.Struct("!BBBBHH")


class PacketError(ValueError):
    """An advert that RFC 5798 7.1 says to discard; `reason` is a stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRPv3 advertisement."""

    vrid: int
    priority: int
    interval_cs: int
    """Max advertisement interval in centiseconds (12 bits)."""
    addresses: tuple[IPAddress, ...] = ()


def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(payload: bytes, src: IPAddress, dst: IPAddress) -> int:
    """VRRPv3 checksum of `payload` (checksum field zero) between `src` and `dst`."""
    if isinstance(src, IPv4Address):
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, VRRP_PROTO, len(payload))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", len(payload), VRRP_PROTO)
    return ~_sum16(pseudo + payload) & 0xFFFF


def encode(advert: Advert, src: IPAddress, dst: IPAddress, *,
           with_checksum: bool = True) -> bytes:
    """The VRRP message (without IP header) for `advert` sent from `src` to `dst`.
    `with_checksum=False` leaves the field zero for the kernel to fill (IPv6 raw
    sockets with IPV6_CHECKSUM)."""
    if not 1 <= advert.vrid <= 255 or not 0 <= advert.priority <= 255:
        raise ValueError("vrid 1-255, priority 0-255")
    if not 1 <= advert.interval_cs <= 0xFFF:
        raise ValueError("advert interval 1-4095 centiseconds")
    addrs = b"".join(a.packed for a in advert.addresses)
    body = _HEAD.pack((VRRP_VERSION << 4) | ADVERTISEMENT, advert.vrid, advert.priority,
                      len(advert.addresses), advert.interval_cs & 0xFFF, 0) + addrs
    if not with_checksum:
        return body
    return body[:6] + struct.pack("!H", checksum(body, src, dst)) + body[8:]


def decode(payload: bytes, src: IPAddress, dst: IPAddress, *,
           verify_checksum: bool = True) -> Advert:
    """Parse and validate a VRRP message; raises PacketError with the discard reason."""
    if len(payload) < 8:
        raise PacketError("too_short")
    vt, vrid, priority, count, rsvd_int, _ = _HEAD.unpack_from(payload, 0)
    if vt >> 4 != VRRP_VERSION:
        raise PacketError("bad_version", str(vt >> 4))
    if vt & 0xF != ADVERTISEMENT:
        raise PacketError("bad_type", str(vt & 0xF))
    size = 4 if isinstance(src, IPv4Address) else 16
    if len(payload) < 8 + count * size:
        raise PacketError("bad_length", f"{count} addresses in {len(payload)} bytes")
    if verify_checksum and checksum(payload[:6] + b"\x00\x00" + payload[8:], src, dst) != (
            struct.unpack_from("!H", payload, 6)[0]):
        raise PacketError("bad_checksum")
    addresses = tuple(ip_address(payload[8 + i * size:8 + (i + 1) * size])
                      for i in range(count))
    interval = rsvd_int & 0xFFF
    if interval == 0:
        raise PacketError("bad_interval", "0")
    return Advert(vrid, priority, interval, addresses)


def centiseconds(seconds: float) -> int:
    """Advert interval in the 12-bit centisecond field (10 ms .. 40.95 s)."""
    return max(1, min(0xFFF, round(seconds * 100)))
