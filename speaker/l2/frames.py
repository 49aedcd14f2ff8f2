"""Ethernet frames of the L2 announcer: parse ARP/NDP, build replies, GARP and NA.

Pure functions on bytes, struct-based: the hot path (one request in, one
reply out) never touches scapy. Replies are filled into prebuilt templates;
tests check every frame kind against scapy's dissectors.

Offsets assume an untagged Ethernet header (14 bytes): a responder bound to
an 802.1Q sub-interface sees its frames untagged, and the BPF filter drops
frames whose tag the kernel stripped (they belong to a VLAN sub-interface).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
ICMP6_NS = 135
ICMP6_NA = 136
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = bytes(16)
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
MIN_FRAME = 60
"""Ethernet minimum without FCS: short frames are zero-padded (NICs would pad anyway)."""

_ARP_HDR = struct.Struct("!6s6sHHHBBH6s4s6s4s")
_ETH = struct.Struct("!6s6sH")
_IP6 = struct.Struct("!IHBB16s16s")
_NA_HEAD = struct.Struct("!BBHI16s")


def mac_bytes(mac: str) -> bytes:
    """'02:00:00:00:00:01' -> 6 bytes."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return raw


def mac_text(mac: bytes) -> str:
    """6 bytes -> '02:00:00:00:00:01'."""
    return ":".join(f"{b:02x}" for b in mac)


def _pad(frame: bytes) -> bytes:
    return frame + b"\x00" * (MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


def checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp6_checksum(src: bytes, dst: bytes, payload: bytes) -> int:
    """ICMPv6 checksum over the IPv6 pseudo-header and `payload` (checksum field zero)."""
    pseudo = src + dst + struct.pack("!IxxxB", len(payload), IPPROTO_ICMPV6)
    return checksum(pseudo + payload)


# --- parsing -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Arp:
    """A parsed ARP packet (request or reply)."""

    eth_src: bytes
    op: int
    sha: bytes
    spa: IPv4Address
    tha: bytes
    tpa: IPv4Address


@dataclass(frozen=True, slots=True)
class Ndp:
    """A parsed neighbour solicitation or advertisement."""

    eth_src: bytes
    kind: Literal["ns", "na"]
    src: IPv6Address
    dst: IPv6Address
    target: IPv6Address
    hop_limit: int


def parse(frame: bytes) -> Arp | Ndp | None:
    """Decode an Ethernet frame into an ARP or NS/NA record; anything else is None."""
    if len(frame) < 42:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype == ETH_P_ARP:
        (_, src, _, htype, ptype, hlen, plen, op, sha, spa, tha,
         tpa) = _ARP_HDR.unpack_from(frame, 0)
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            return None
        return Arp(src, op, sha, IPv4Address(spa), tha, IPv4Address(tpa))
    if ethertype == ETH_P_IPV6 and len(frame) >= 78:
        _, _, next_header, hop_limit, src6, dst6 = _IP6.unpack_from(frame, 14)
        if next_header != IPPROTO_ICMPV6 or frame[54] not in (ICMP6_NS, ICMP6_NA):
            return None
        kind: Literal["ns", "na"] = "ns" if frame[54] == ICMP6_NS else "na"
        return Ndp(frame[6:12], kind, IPv6Address(src6), IPv6Address(dst6),
                   IPv6Address(frame[62:78]), hop_limit)
    return None


# --- ARP -----------------------------------------------------------------------------------

def arp_frame(op: int, eth_dst: bytes, mac: bytes, spa: IPv4Address, tha: bytes,
              tpa: IPv4Address) -> bytes:
    """One ARP frame sent from `mac`."""
    return _pad(_ARP_HDR.pack(eth_dst, mac, ETH_P_ARP, 1, 0x0800, 6, 4, op, mac, spa.packed,
                              tha, tpa.packed))


class ArpReplyTemplate:
    """A prebuilt ARP reply for one VIP on one interface; `fill` adds the requester."""

    __slots__ = ("_buf",)

    def __init__(self, mac: bytes, vip: IPv4Address) -> None:
        self._buf = bytearray(arp_frame(ARP_REPLY, ZERO_MAC, mac, vip, ZERO_MAC,
                                        IPv4Address(0)))

    def fill(self, sha: bytes, spa: bytes) -> bytes:
        """The reply to a request from hardware address `sha`, protocol address `spa`
        (raw bytes, straight from the request frame): unicast to the requester."""
        buf = self._buf
        buf[0:6] = sha
        buf[32:38] = sha
        buf[38:42] = spa
        return bytes(buf)


def garp_frames(mac: bytes, vip: IPv4Address) -> tuple[bytes, bytes]:
    """Gratuitous ARP, request form and reply form (receivers differ in what they honour)."""
    request = arp_frame(ARP_REQUEST, BROADCAST, mac, vip, ZERO_MAC, vip)
    reply = arp_frame(ARP_REPLY, BROADCAST, mac, vip, mac, vip)
    return request, reply


def arp_probe(mac: bytes, vip: IPv4Address) -> bytes:
    """RFC 5227 probe: 'who has VIP?' from 0.0.0.0; any answer comes from another owner."""
    return arp_frame(ARP_REQUEST, BROADCAST, mac, IPv4Address(0), ZERO_MAC, vip)


# --- NDP -----------------------------------------------------------------------------------

def solicited_node(address: IPv6Address) -> tuple[IPv6Address, bytes]:
    """Solicited-node multicast address of `address` and its Ethernet address."""
    group = IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + address.packed[13:])
    return group, b"\x33\x33" + group.packed[12:]


def _ip6_frame(eth_dst: bytes, mac: bytes, src: IPv6Address, dst: IPv6Address,
               icmp: bytes) -> bytes:
    csum = icmp6_checksum(src.packed, dst.packed, icmp)
    icmp = icmp[:2] + struct.pack("!H", csum) + icmp[4:]
    ip6 = _IP6.pack(0x60000000, len(icmp), IPPROTO_ICMPV6, 255, src.packed, dst.packed)
    return _ETH.pack(eth_dst, mac, ETH_P_IPV6) + ip6 + icmp


def na_frame(eth_dst: bytes, mac: bytes, vip: IPv6Address, dst: IPv6Address,
             flags: int) -> bytes:
    """Neighbour advertisement for `vip` with a target link-layer address option."""
    icmp = _NA_HEAD.pack(ICMP6_NA, 0, 0, flags, vip.packed) + b"\x02\x01" + mac
    return _ip6_frame(eth_dst, mac, vip, dst, icmp)


def unsolicited_na(mac: bytes, vip: IPv6Address) -> bytes:
    """Takeover announcement: NA to all-nodes, override set, solicited clear."""
    return na_frame(ALL_NODES_MAC, mac, vip, ALL_NODES, NA_OVERRIDE)


def ns_probe(mac: bytes, vip: IPv6Address) -> bytes:
    """DAD-style solicitation (source ::, no source link-layer option) for `vip`."""
    group, group_mac = solicited_node(vip)
    icmp = _NA_HEAD.pack(ICMP6_NS, 0, 0, 0, vip.packed)
    return _ip6_frame(group_mac, mac, IPv6Address(0), group, icmp)


class NaReplyTemplate:
    """Answers to solicitations for one IPv6 VIP on one interface (RFC 4861 7.2.4)."""

    __slots__ = ("_dad", "_mac", "_partial", "_tmpl")

    def __init__(self, mac: bytes, vip: IPv6Address) -> None:
        self._mac = mac
        self._dad = na_frame(ALL_NODES_MAC, mac, vip, ALL_NODES, NA_OVERRIDE)
        self._tmpl = bytearray(na_frame(ZERO_MAC, mac, vip, IPv6Address(0),
                                        NA_SOLICITED | NA_OVERRIDE))
        # Checksum of everything but the destination address, folded lazily in fill().
        self._partial = ~struct.unpack_from("!H", self._tmpl, 56)[0] & 0xFFFF

    def fill(self, eth_src: bytes, src: bytes) -> bytes:
        """Solicited NA to the soliciting MAC `eth_src` and IPv6 source `src` (raw bytes);
        a DAD probe (source ::) gets an NA to all-nodes with the solicited flag clear."""
        if src == UNSPECIFIED:
            return self._dad
        buf = self._tmpl
        buf[0:6] = eth_src
        dst = src
        buf[38:54] = dst
        total = self._partial + sum(struct.unpack("!8H", dst))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into("!H", buf, 56, ~total & 0xFFFF)
        return bytes(buf)
