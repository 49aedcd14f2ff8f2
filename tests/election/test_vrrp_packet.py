"""VRRPv3 adverts: our encoder against scapy's VRRPv3 dissector, and validation."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRPv3

from speaker.election.vrrp_packet import (
    VRRP_GROUP_V4,
    VRRP_GROUP_V6,
    Advert,
    PacketError,
    centiseconds,
    decode,
    encode,
)

SRC4 = IPv4Address("192.0.2.11")
SRC6 = IPv6Address("fe80::11")
ADV4 = Advert(51, 150, 10, (IPv4Address("192.0.2.100"), IPv4Address("192.0.2.101")))
ADV6 = Advert(52, 100, 100, (IPv6Address("2001:db8::100"),))


def test_ipv4_advert_matches_scapy_including_checksum() -> None:
    payload = encode(ADV4, SRC4, VRRP_GROUP_V4)
    pkt = IP(bytes(IP(src=str(SRC4), dst=str(VRRP_GROUP_V4), ttl=255, proto=112) / payload))
    vrrp = pkt[VRRPv3]
    assert (vrrp.version, vrrp.type, vrrp.vrid, vrrp.priority) == (3, 1, 51, 150)
    assert vrrp.ipcount == 2
    assert vrrp.adv == 10
    assert vrrp.addrlist == ["192.0.2.100", "192.0.2.101"]
    wire = vrrp.chksum
    del vrrp.chksum
    assert IP(bytes(pkt))[VRRPv3].chksum == wire  # scapy uses the IPv4 pseudo-header too


def test_ipv6_advert_matches_scapy() -> None:
    payload = encode(ADV6, SRC6, VRRP_GROUP_V6)
    pkt = IPv6(bytes(IPv6(src=str(SRC6), dst=str(VRRP_GROUP_V6), hlim=255, nh=112) / payload))
    vrrp = pkt[VRRPv3]
    assert vrrp.addrlist == ["2001:db8::100"]
    wire = vrrp.chksum
    del vrrp.chksum
    assert IPv6(bytes(pkt))[VRRPv3].chksum == wire


def test_roundtrip() -> None:
    assert decode(encode(ADV4, SRC4, VRRP_GROUP_V4), SRC4, VRRP_GROUP_V4) == ADV4
    assert decode(encode(ADV6, SRC6, VRRP_GROUP_V6), SRC6, VRRP_GROUP_V6) == ADV6


def test_decodes_scapy_built_advert() -> None:
    pkt = IP(src="192.0.2.12", dst="224.0.0.18") / VRRPv3(vrid=7, priority=200, adv=100,
                                                          ipcount=1, addrlist=["192.0.2.7"])
    raw = bytes(pkt)
    advert = decode(raw[20:], IPv4Address("192.0.2.12"), VRRP_GROUP_V4)
    assert advert == Advert(7, 200, 100, (IPv4Address("192.0.2.7"),))


@pytest.mark.parametrize(("mangle", "reason"), [
    (lambda b: b[:6], "too_short"),
    (lambda b: bytes([0x21]) + b[1:], "bad_version"),
    (lambda b: bytes([0x32]) + b[1:], "bad_type"),
    (lambda b: b[:3] + bytes([9]) + b[4:], "bad_length"),
    (lambda b: b[:2] + bytes([b[2] ^ 1]) + b[3:], "bad_checksum"),
])
def test_invalid_adverts_are_discarded_with_reason(mangle, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PacketError) as err:
        decode(mangle(encode(ADV4, SRC4, VRRP_GROUP_V4)), SRC4, VRRP_GROUP_V4)
    assert err.value.reason == reason


def test_interval_in_centiseconds() -> None:
    assert centiseconds(0.1) == 10
    assert centiseconds(1.0) == 100
    assert centiseconds(40.95) == 4095
    assert centiseconds(100.0) == 4095
