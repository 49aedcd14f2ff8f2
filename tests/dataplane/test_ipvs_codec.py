"""Our struct-encoded IPVS messages against pyroute2's IPVS message class, both ways."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from socket import AF_INET, AF_INET6
from typing import Any

import pytest
from pyroute2.netlink.generic.ipvs import ipvsmsg

from dataplane.ipvs import codec
from dataplane.ipvs.kernel import encode_op
from dataplane.ipvs.model import Dest, DestKey, Service, ServiceKey
from dataplane.ipvs.plan import AddDest, AddService, DelDest, DelService

FAMILY = 0x1F


def decode(data: bytes) -> Any:
    msg = ipvsmsg(data)
    msg.decode()
    return msg


@pytest.mark.parametrize("service", [
    Service(ServiceKey.tcp("203.0.113.10", 80), "wrr", frozenset({"flag-1"}), 300, 24),
    Service(ServiceKey.udp("2001:db8:ff::1", 53), "mh", frozenset({"mh-port"}), None, 64, True),
    Service(ServiceKey.of_fwmark(7), "rr"),
])
def test_service_message_decodes_in_pyroute2(service: Service) -> None:
    msg = decode(encode_op(FAMILY, AddService(service), seq=42))
    assert (msg["header"]["type"], msg["header"]["sequence_number"]) == (FAMILY, 42)
    assert msg["cmd"] == codec.CMD_NEW_SERVICE
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    family = AF_INET if service.key.family == 4 else AF_INET6
    assert svc.get_attr("IPVS_SVC_ATTR_AF") == family
    if service.key.protocol == "fwmark":
        assert svc.get_attr("IPVS_SVC_ATTR_FWMARK") == 7
    else:
        assert svc.get_attr("IPVS_SVC_ATTR_ADDR") == str(service.key.address)
        assert svc.get_attr("IPVS_SVC_ATTR_PORT") == service.key.port
        assert svc.get_attr("IPVS_SVC_ATTR_PROTOCOL") == codec.IPPROTO[service.key.protocol]
    assert svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == service.scheduler
    assert svc.get_attr("IPVS_SVC_ATTR_FLAGS")["flags"] == service.flag_bits
    assert svc.get_attr("IPVS_SVC_ATTR_TIMEOUT") == (service.persistence or 0)


def test_dest_message_decodes_in_pyroute2() -> None:
    key = DestKey(ServiceKey.tcp("203.0.113.10", 80), IPv4Address("198.51.100.11"), 8080)
    msg = decode(encode_op(FAMILY, AddDest(Dest(key, 5, "tunnel", 100, 10)), seq=1))
    assert msg["cmd"] == codec.CMD_NEW_DEST
    assert msg.get_attr("IPVS_CMD_ATTR_SERVICE").get_attr("IPVS_SVC_ATTR_PORT") == 80
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    assert dest.get_attr("IPVS_DEST_ATTR_ADDR") == "198.51.100.11"
    assert dest.get_attr("IPVS_DEST_ATTR_PORT") == 8080
    assert dest.get_attr("IPVS_DEST_ATTR_FWD_METHOD") == 2
    assert dest.get_attr("IPVS_DEST_ATTR_WEIGHT") == 5
    assert dest.get_attr("IPVS_DEST_ATTR_U_THRESH") == 100
    assert dest.get_attr("IPVS_DEST_ATTR_L_THRESH") == 10


def test_deletes_carry_keys_only() -> None:
    key = DestKey(ServiceKey.tcp("203.0.113.10", 80), IPv6Address("2001:db8:2::11"), 80)
    msg = decode(encode_op(FAMILY, DelDest(key), seq=1))
    dest = msg.get_attr("IPVS_CMD_ATTR_DEST")
    assert dest.get_attr("IPVS_DEST_ATTR_WEIGHT") is None
    assert dest.get_attr("IPVS_DEST_ATTR_ADDR") == "2001:db8:2::11"
    assert dest.get_attr("IPVS_DEST_ATTR_ADDR_FAMILY") == AF_INET6
    msg = decode(encode_op(FAMILY, DelService(key.service), seq=2))
    svc = msg.get_attr("IPVS_CMD_ATTR_SERVICE")
    assert svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") is None


def _dump_reply(attrs: list[tuple[str, Any]], kind: str) -> bytes:
    """A dump message as the kernel would send it, encoded by pyroute2."""
    msg = ipvsmsg()
    msg["cmd"] = codec.CMD_NEW_SERVICE if kind == "service" else codec.CMD_NEW_DEST
    msg["version"] = 1
    msg["attrs"] = [(f"IPVS_CMD_ATTR_{kind.upper()}", {"attrs": attrs})]
    msg["header"]["type"] = FAMILY
    msg.encode()
    return bytes(msg.data)[16:]  # our decoders take the payload after nlmsghdr


def test_decode_kernel_style_dumps() -> None:
    stats = {"attrs": [("IPVS_STATS_ATTR_CONNS", 12), ("IPVS_STATS_ATTR_INBYTES", 3000)]}
    payload = _dump_reply([
        ("IPVS_SVC_ATTR_AF", AF_INET), ("IPVS_SVC_ATTR_PROTOCOL", 6),
        ("IPVS_SVC_ATTR_ADDR", "203.0.113.10"), ("IPVS_SVC_ATTR_PORT", 443),
        ("IPVS_SVC_ATTR_SCHED_NAME", "sh"),
        ("IPVS_SVC_ATTR_FLAGS", {"flags": 0x1 | 0x2 | 0x10, "mask": 0xFFFFFFFF}),
        ("IPVS_SVC_ATTR_TIMEOUT", 600), ("IPVS_SVC_ATTR_NETMASK", "255.255.255.0"),
        ("IPVS_SVC_ATTR_STATS64", stats),
    ], "service")
    service, svc_stats = codec.decode_service(payload)
    assert service == Service(ServiceKey.tcp("203.0.113.10", 443), "sh",
                              frozenset({"sh-port"}), 600, 24)
    assert (svc_stats.connections, svc_stats.bytes_in) == (12, 3000)
    decoder = codec.DumpDecoder()
    decoder.start()
    first = decoder.service(payload)
    assert first == service
    decoder.finish()
    decoder.start()  # the next dump: the same bytes give the same object, undecoded
    assert decoder.service(payload) is first
    payload = _dump_reply([
        ("IPVS_DEST_ATTR_ADDR", "198.51.100.11"), ("IPVS_DEST_ATTR_ADDR_FAMILY", AF_INET),
        ("IPVS_DEST_ATTR_PORT", 80), ("IPVS_DEST_ATTR_FWD_METHOD", 3),
        ("IPVS_DEST_ATTR_WEIGHT", 4), ("IPVS_DEST_ATTR_U_THRESH", 0),
        ("IPVS_DEST_ATTR_L_THRESH", 0), ("IPVS_DEST_ATTR_ACTIVE_CONNS", 2),
        ("IPVS_DEST_ATTR_INACT_CONNS", 1), ("IPVS_DEST_ATTR_PERSIST_CONNS", 0),
        ("IPVS_DEST_ATTR_STATS64", stats),
    ], "dest")
    dest, dest_stats = codec.decode_dest(service.key, payload)
    assert dest == Dest(DestKey(service.key, IPv4Address("198.51.100.11"), 80), 4, "dr")
    assert (dest_stats.active_connections, dest_stats.inactive_connections) == (2, 1)
    assert decoder.dest(service.key, payload) == dest
