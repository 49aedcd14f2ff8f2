"""Hostile and malformed ARP requests / solicitations get no answer, each counted by reason."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from speaker.l2 import frames
from speaker.l2.answer import Answerer
from speaker.l2.metrics import FRAMES_REJECTED
from speaker.l2.wellformed import arp_header_error, arp_request_error, ns_error
from speaker.model import L2Vip

MAC = frames.mac_bytes("02:00:00:00:00:0a")
CLIENT = "02:00:00:00:00:32"
VIP4, VIP6 = "192.0.2.100", "2001:db8::100"
SOLICITED, SOLICITED_MAC = "ff02::1:ff00:100", "33:33:ff:00:01:00"


class Port:
    name = "eti0"
    mac = MAC

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def fileno(self) -> int:
        return -1

    def receive(self) -> Iterator[bytes]:
        return iter(())


def arp(dst: str = "ff:ff:ff:ff:ff:ff", src: str = CLIENT, **kw: object) -> bytes:
    fields = {"op": 1, "hwsrc": src, "psrc": "192.0.2.50", "pdst": VIP4, **kw}
    return bytes(Ether(dst=dst, src=src) / ARP(**fields))


def ns(dst_mac: str = SOLICITED_MAC, src_mac: str = CLIENT, src: str = "2001:db8::50",
       dst: str = SOLICITED, hlim: int = 255, lladdr: str | None = CLIENT,
       target: str = VIP6, code: int = 0, raw_opt: bytes | None = None,
       cksum: int | None = None) -> bytes:
    icmp = ICMPv6ND_NS(tgt=target, code=code)
    if cksum is not None:
        icmp.cksum = cksum
    pkt = Ether(dst=dst_mac, src=src_mac) / IPv6(src=src, dst=dst, hlim=hlim) / icmp
    if lladdr is not None:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=lladdr)
    if raw_opt is not None:
        pkt = pkt / Raw(raw_opt)
    return bytes(pkt)


def test_well_formed_requests_pass() -> None:
    assert arp_header_error(arp()) is None
    assert arp_request_error(arp(), MAC) is None
    assert arp_request_error(arp(dst=frames.mac_text(MAC)), MAC) is None  # unicast refresh
    assert ns_error(ns(), MAC) is None
    assert ns_error(ns(dst_mac=frames.mac_text(MAC), dst=VIP6), MAC) is None
    assert ns_error(ns(src="::", lladdr=None), MAC) is None  # DAD probe


@pytest.mark.parametrize(("frame", "reason"), [
    (arp(hwtype=6), "arp_bad_header"),
    (arp(ptype=0x86DD), "arp_bad_header"),
    (arp(hwlen=8), "arp_bad_header"),
    (arp(plen=16), "arp_bad_header"),
])
def test_arp_header_fields(frame: bytes, reason: str) -> None:
    assert arp_header_error(frame) == reason


@pytest.mark.parametrize(("frame", "reason"), [
    (arp(dst="02:00:00:00:00:99"), "not_for_us"),
    (arp(dst="01:00:5e:00:00:01"), "not_for_us"),
    (arp(src="ff:ff:ff:ff:ff:ff"), "bad_sender_mac"),
    (arp(src="01:00:5e:00:00:01"), "bad_sender_mac"),
    (arp(hwsrc="33:33:00:00:00:01"), "bad_sender_mac"),
    (arp(src="00:00:00:00:00:00", hwsrc="00:00:00:00:00:00"), "bad_sender_mac"),
])
def test_arp_requests_not_answered(frame: bytes, reason: str) -> None:
    assert arp_request_error(frame, MAC) == reason


@pytest.mark.parametrize(("frame", "reason"), [
    (ns(dst_mac="02:00:00:00:00:99"), "not_for_us"),
    (ns(src_mac="33:33:00:00:00:01"), "bad_sender_mac"),
    (ns(lladdr="ff:ff:ff:ff:ff:ff"), "bad_sender_mac"),
    (ns(hlim=64), "ns_bad_hop_limit"),
    (ns(code=1), "ns_bad_code"),
    (ns(cksum=0x1234), "ns_bad_checksum"),
    (ns(target="ff02::1"), "ns_multicast_target"),
    (ns(lladdr=None, raw_opt=b"\x01\x00" + b"\x00" * 6), "ns_bad_option"),
    (ns(lladdr=None, raw_opt=b"\x0e\x04" + b"\x00" * 6), "ns_bad_option"),
    (ns(src="::"), "ns_bad_dad"),  # unspecified source with a link-layer option
    (ns(src="::", lladdr=None, dst="ff02::1"), "ns_bad_dad"),
])
def test_solicitations_not_answered(frame: bytes, reason: str) -> None:
    assert ns_error(frame, MAC) == reason


def test_answerer_sends_nothing_for_hostile_frames_and_counts_them() -> None:
    port = Port()
    answer = Answerer()
    vips = [L2Vip(IPv4Address(VIP4), ("eti0",), "g"), L2Vip(IPv6Address(VIP6), ("eti0",), "g")]
    from speaker.l2.answer import PortMetrics

    answer.metrics["eti0"] = PortMetrics("eti0")
    answer.rebuild(vips, [v.address for v in vips], {"eti0": port})  # type: ignore[dict-item]
    before = FRAMES_REJECTED.labels("eti0", "not_for_us")._value.get()
    for frame in (arp(dst="02:00:00:00:00:99"), ns(dst_mac="02:00:00:00:00:99"),
                  arp(hwtype=6), ns(hlim=1), arp(src="ff:ff:ff:ff:ff:ff")):
        answer.handle(port, frame)  # type: ignore[arg-type]
    assert port.sent == []
    assert FRAMES_REJECTED.labels("eti0", "not_for_us")._value.get() - before == 2
    answer.handle(port, arp())  # type: ignore[arg-type]
    answer.handle(port, ns())  # type: ignore[arg-type]
    assert len(port.sent) == 2


def test_requests_and_replies_are_counted_per_vip_and_go_with_the_vip() -> None:
    from speaker.l2.answer import PortMetrics
    from speaker.metrics import REGISTRY

    def value(name: str, vip: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"interface": "etv0", "vip": vip})

    port = Port()
    port.name = "etv0"  # type: ignore[misc]
    answer = Answerer()
    answer.metrics["etv0"] = PortMetrics("etv0")
    vips = [L2Vip(IPv4Address(VIP4), ("etv0",), "g"), L2Vip(IPv6Address(VIP6), ("etv0",), "g")]
    answer.rebuild(vips, [v.address for v in vips], {"etv0": port})  # type: ignore[dict-item]
    for frame in (arp(), arp(), ns()):
        answer.handle(port, frame)  # type: ignore[arg-type]
    assert value("speaker_arp_requests_received_total", VIP4) == 2
    assert value("speaker_arp_replies_sent_total", VIP4) == 2
    assert value("speaker_ndp_advertisements_sent_total", VIP6) == 1
    assert value("speaker_arp_replies_sent_total", VIP6) is None
    answer.rebuild(vips[1:], [vips[1].address], {"etv0": port})  # type: ignore[dict-item]
    assert value("speaker_arp_replies_sent_total", VIP4) is None  # left the config
    assert value("speaker_ndp_advertisements_sent_total", VIP6) == 1
