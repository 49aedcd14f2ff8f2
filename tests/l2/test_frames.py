"""Every frame the responder sends, checked by scapy's dissectors."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from speaker.l2 import frames

MAC = frames.mac_bytes("02:00:00:00:00:0a")
CLIENT = frames.mac_bytes("02:00:00:00:00:c1")
VIP4 = IPv4Address("192.0.2.100")
VIP6 = IPv6Address("2001:db8::100")


def _icmp6_ok(pkt: Ether) -> bool:
    """scapy recomputes the checksum when it is deleted; compare with the wire value."""
    icmp = pkt[IPv6].payload
    wire = icmp.cksum
    rebuilt = Ether(bytes(pkt))
    del rebuilt[IPv6].payload.cksum
    return bool(Ether(bytes(rebuilt))[IPv6].payload.cksum == wire)


def test_arp_reply_answers_the_requester() -> None:
    request = bytes(Ether(src="02:00:00:00:00:c1", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc="02:00:00:00:00:c1", psrc="192.0.2.50", pdst=str(VIP4)))
    parsed = frames.parse(request)
    assert isinstance(parsed, frames.Arp)
    assert parsed.tpa == VIP4
    reply = Ether(frames.ArpReplyTemplate(MAC, VIP4).fill(parsed.sha, parsed.spa.packed))
    assert reply.dst == "02:00:00:00:00:c1"
    assert reply.src == "02:00:00:00:00:0a"
    assert reply[ARP].op == 2
    assert reply[ARP].hwsrc == "02:00:00:00:00:0a"
    assert reply[ARP].psrc == str(VIP4)
    assert reply[ARP].hwdst == "02:00:00:00:00:c1"
    assert reply[ARP].pdst == "192.0.2.50"
    assert len(bytes(reply)) == frames.MIN_FRAME


def test_garp_request_and_reply_forms() -> None:
    req, rep = (Ether(f) for f in frames.garp_frames(MAC, VIP4))
    for pkt in (req, rep):
        assert pkt.dst == "ff:ff:ff:ff:ff:ff"
        assert pkt[ARP].psrc == pkt[ARP].pdst == str(VIP4)
        assert pkt[ARP].hwsrc == "02:00:00:00:00:0a"
    assert req[ARP].op == 1
    assert rep[ARP].op == 2
    assert rep[ARP].hwdst == "02:00:00:00:00:0a"


def test_arp_probe_is_rfc5227() -> None:
    pkt = Ether(frames.arp_probe(MAC, VIP4))
    assert pkt[ARP].op == 1
    assert pkt[ARP].psrc == "0.0.0.0"
    assert pkt[ARP].hwdst == "00:00:00:00:00:00"
    assert pkt[ARP].pdst == str(VIP4)


def test_solicited_na_flags_and_checksum() -> None:
    ns = Ether(src="02:00:00:00:00:c1", dst="33:33:ff:00:01:00") / IPv6(
        src="2001:db8::50", dst=str(frames.solicited_node(VIP6)[0]), hlim=255) / ICMPv6ND_NS(
        tgt=str(VIP6))
    parsed = frames.parse(bytes(ns))
    assert isinstance(parsed, frames.Ndp)
    assert parsed.kind == "ns"
    assert parsed.target == VIP6
    tmpl = frames.NaReplyTemplate(MAC, VIP6)
    na = Ether(tmpl.fill(parsed.eth_src, parsed.src.packed))
    assert na.dst == "02:00:00:00:00:c1"
    assert na[IPv6].src == str(VIP6)
    assert na[IPv6].dst == "2001:db8::50"
    assert na[IPv6].hlim == 255
    adv = na[ICMPv6ND_NA]
    assert (adv.R, adv.S, adv.O) == (0, 1, 1)
    assert adv.tgt == str(VIP6)
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:0a"
    assert _icmp6_ok(na)
    # The template is reused: a second requester gets its own, correct checksum.
    na2 = Ether(tmpl.fill(CLIENT, IPv6Address("2001:db8::ffff:1").packed))
    assert na2[IPv6].dst == "2001:db8::ffff:1"
    assert _icmp6_ok(na2)


def test_dad_solicitation_gets_multicast_na_without_solicited_flag() -> None:
    na = Ether(frames.NaReplyTemplate(MAC, VIP6).fill(CLIENT, frames.UNSPECIFIED))
    assert na.dst == "33:33:00:00:00:01"
    assert na[IPv6].dst == "ff02::1"
    assert (na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 1)
    assert _icmp6_ok(na)


def test_unsolicited_na_overrides() -> None:
    na = Ether(frames.unsolicited_na(MAC, VIP6))
    assert na[IPv6].dst == "ff02::1"
    assert (na[ICMPv6ND_NA].R, na[ICMPv6ND_NA].S, na[ICMPv6ND_NA].O) == (0, 0, 1)
    assert _icmp6_ok(na)


def test_ns_probe_is_dad_style() -> None:
    ns = Ether(frames.ns_probe(MAC, VIP6))
    assert ns[IPv6].src == "::"
    assert ns[IPv6].dst == "ff02::1:ff00:100"
    assert ns.dst == "33:33:ff:00:01:00"
    assert ns[ICMPv6ND_NS].tgt == str(VIP6)
    assert _icmp6_ok(ns)


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 20, bytes(Ether() / IPv6())])
def test_parse_ignores_other_frames(garbage: bytes) -> None:
    assert frames.parse(garbage) is None
