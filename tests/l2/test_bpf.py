"""The BPF filter passes exactly the ARP/NDP frames about owned VIPs."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from speaker.l2 import bpf

V4 = [IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")]
V6 = [IPv6Address("2001:db8::100"), IPv6Address("2001:db8::1:100")]
PROG = bpf.program(V4, V6)


def arp(pdst: str, psrc: str = "192.0.2.50", op: int = 1) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:c1") / ARP(op=op, psrc=psrc, pdst=pdst))


def nd(tgt: str, na: bool = False) -> bytes:
    layer = ICMPv6ND_NA(tgt=tgt) if na else ICMPv6ND_NS(tgt=tgt)
    return bytes(Ether() / IPv6(src="2001:db8::50", hlim=255) / layer)


def test_requests_for_owned_vips_pass() -> None:
    assert bpf.match(PROG, arp("192.0.2.101"))
    assert bpf.match(PROG, nd("2001:db8::1:100"))


def test_other_addresses_and_protocols_drop() -> None:
    assert not bpf.match(PROG, arp("192.0.2.102"))
    assert not bpf.match(PROG, nd("2001:db8::100:0"))
    assert not bpf.match(PROG, bytes(Ether() / IP(dst="192.0.2.100") / ICMP()))


def test_foreign_claims_pass_for_conflict_detection() -> None:
    assert bpf.match(PROG, arp("192.0.2.50", psrc="192.0.2.100", op=2))
    assert bpf.match(PROG, nd("2001:db8::100", na=True))


def test_outgoing_and_vlan_tagged_frames_drop() -> None:
    assert not bpf.match(PROG, arp("192.0.2.100"), outgoing=True)
    assert not bpf.match(PROG, arp("192.0.2.100"), vlan=True)


def test_empty_set_drops_everything() -> None:
    prog = bpf.program([], [])
    assert not bpf.match(prog, arp("192.0.2.100"))
    assert not bpf.match(prog, nd("2001:db8::100"))


def test_huge_sets_fall_back_to_protocol_filter_within_kernel_limit() -> None:
    many = [IPv6Address(f"2001:db8::{i:x}") for i in range(1, 1000)]
    prog = bpf.program([], many)
    assert len(prog) <= bpf.MAX_INSNS
    assert bpf.match(prog, nd("2001:db8::ffff"))  # userspace lookup decides


@given(st.sets(st.integers(0, 255), max_size=40), st.integers(0, 255))
def test_v4_membership_property(owned: set[int], probe: int) -> None:
    vips = [IPv4Address(f"198.51.100.{i}") for i in owned]
    prog = bpf.program(vips, [])
    assert all(0 <= jt < 256 and 0 <= jf < 256 for _, jt, jf, _ in prog)
    assert bpf.match(prog, arp(f"198.51.100.{probe}")) == (probe in owned)


@given(st.sets(st.integers(0, 0xFFFF), max_size=40), st.integers(0, 0xFFFF))
def test_v6_membership_property(owned: set[int], probe: int) -> None:
    vips = [IPv6Address(f"2001:db8::{i:x}") for i in owned]
    prog = bpf.program([], vips)
    assert bpf.match(prog, nd(f"2001:db8::{probe:x}")) == (probe in owned)
