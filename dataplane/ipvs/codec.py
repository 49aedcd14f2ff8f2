"""Netlink wire format of IPVS messages: encode ops, decode dumps, with ``struct``.

pyroute2 builds each message through its generic NLA machinery, which costs far
more Python time per message than the kernel spends on it (a full sync of 1,000
services x 4 dests took 18-26 s in a TCG VM against 1.2 s for ``ipvsadm -R``).
This module writes the same bytes directly: attribute layouts are those of
``pyroute2.netlink.generic.ipvs.ipvsmsg`` (the unit tests decode our messages
with pyroute2 to prove it) and ``include/uapi/linux/ip_vs.h``. The encoded
service-key attribute of each service is cached, since every dest message of
that service carries it.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from socket import AF_INET, AF_INET6

from dataplane.ipvs.model import (
    Dest,
    DestKey,
    DestStats,
    IPAddress,
    Method,
    Protocol,
    Service,
    ServiceKey,
    Stats,
    sched_flag_names,
)

# include/uapi/linux/ip_vs.h
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_GET_INFO = 15
ATTR_SERVICE, ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_STATS64 = 6, 7, 8, 9, 12
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE, DEST_INACTIVE, DEST_PERSIST = 5, 6, 7, 8, 9
DEST_ADDR_FAMILY, DEST_STATS64 = 11, 12
GENL_VERSION = 1
# linux/netlink.h
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
SVC_F_HASHED = 0x2  # kernel-internal flag, reported in dumps, never sent

IPPROTO: dict[Protocol, int] = {"tcp": 6, "udp": 17, "sctp": 132, "fwmark": 0}
PROTO_NAME: dict[int, Protocol] = {6: "tcp", 17: "udp", 132: "sctp"}
FWD_METHOD: dict[Method, int] = {"nat": 0, "tunnel": 2, "dr": 3}
METHOD_NAME: dict[int, Method] = {v: k for k, v in FWD_METHOD.items()}

_NLA = struct.Struct("=HH")
_HDR = struct.Struct("=IHHII")
_GENL = struct.Struct("=BBH")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_BE16 = struct.Struct("!H")
_FLAGS = struct.Struct("=II")
HEADER_LEN = _HDR.size + _GENL.size
_NO_DEST_STATS = DestStats()
_SVC_COUNTERS = frozenset({10, SVC_STATS64})  # IPVS_SVC_ATTR_STATS, _STATS64
_DEST_COUNTERS = frozenset({DEST_ACTIVE, DEST_INACTIVE, DEST_PERSIST, 10, DEST_STATS64})


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length & 3)


def _family(address: IPAddress) -> int:
    return AF_INET if isinstance(address, IPv4Address) else AF_INET6


@lru_cache(maxsize=65536)
def service_key_attr(key: ServiceKey) -> bytes:
    """The ``IPVS_CMD_ATTR_SERVICE`` attribute naming ``key`` (cached)."""
    parts = [nla(SVC_AF, _U16.pack(_family(key.address)))]
    if key.protocol == "fwmark":
        parts.append(nla(SVC_FWMARK, _U32.pack(key.fwmark)))
    else:
        parts += [
            nla(SVC_PROTOCOL, _U16.pack(IPPROTO[key.protocol])),
            nla(SVC_ADDR, key.address.packed),
            nla(SVC_PORT, _BE16.pack(key.port)),
        ]
    return nla(ATTR_SERVICE, b"".join(parts))


def _netmask_bytes(service: Service) -> bytes:
    plen = service.netmask or 0
    if service.key.family == 4:  # a be32 mask
        return struct.pack("!I", (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
    return _U32.pack(plen)  # IPv6: the prefix length itself


def service_attr(service: Service) -> bytes:
    """The full ``IPVS_CMD_ATTR_SERVICE`` attribute of a service (add and set)."""
    key = service_key_attr(service.key)[4:]  # reuse the cached key attributes
    return nla(ATTR_SERVICE, key + b"".join((
        nla(SVC_SCHED_NAME, service.scheduler.encode() + b"\0"),
        nla(SVC_FLAGS, _FLAGS.pack(service.flag_bits, 0xFFFFFFFF)),
        nla(SVC_TIMEOUT, _U32.pack(service.persistence or 0)),
        nla(SVC_NETMASK, _netmask_bytes(service)),
    )))


def dest_attr(dest: Dest | DestKey) -> bytes:
    """The ``IPVS_CMD_ATTR_DEST`` attribute: only the key for a delete."""
    key = dest.key if isinstance(dest, Dest) else dest
    parts = [
        nla(DEST_ADDR, key.address.packed),
        nla(DEST_PORT, _BE16.pack(key.port)),
        nla(DEST_ADDR_FAMILY, _U16.pack(_family(key.address))),
    ]
    if isinstance(dest, Dest):
        parts += [
            nla(DEST_FWD_METHOD, _U32.pack(FWD_METHOD[dest.method])),
            nla(DEST_WEIGHT, _U32.pack(dest.weight)),
            nla(DEST_U_THRESH, _U32.pack(dest.upper_threshold)),
            nla(DEST_L_THRESH, _U32.pack(dest.lower_threshold)),
        ]
    return nla(ATTR_DEST, b"".join(parts))


def message(family_id: int, cmd: int, body: bytes, seq: int, flags: int = NLM_F_REQUEST) -> bytes:
    """A complete generic-netlink message for the IPVS family."""
    return (
        _HDR.pack(HEADER_LEN + len(body), family_id, flags, seq, 0)
        + _GENL.pack(cmd, GENL_VERSION, 0)
        + body
    )


# -- decoding -------------------------------------------------------------------

def split_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split a netlink datagram into ``(type, flags, seq, payload)`` tuples."""
    out = []
    offset = 0
    while offset + _HDR.size <= len(data):
        length, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
        if length < _HDR.size:
            break
        out.append((kind, flags, seq, data[offset + _HDR.size:offset + length]))
        offset += (length + 3) & ~3
    return out


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        attrs[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return attrs


def _address(raw: bytes, family: int) -> IPAddress:
    return IPv4Address(raw[:4]) if family == AF_INET else IPv6Address(raw[:16])


def _stats(raw: bytes | None) -> Stats:
    if raw is None:
        return Stats()
    attrs = parse_attrs(raw)

    def get(kind: int) -> int:
        value = attrs.get(kind)
        return int.from_bytes(value, "little") if value else 0

    return Stats(get(1), get(2), get(3), get(4), get(5), get(6), get(9), get(10))


def decode_service(payload: bytes, with_stats: bool = True) -> tuple[Service, Stats]:
    """Decode one ``IPVS_CMD_NEW_SERVICE`` dump message (genl header included)."""
    attrs = parse_attrs(parse_attrs(payload, _GENL.size)[ATTR_SERVICE])
    family = _U16.unpack(attrs[SVC_AF])[0]
    if SVC_FWMARK in attrs:
        key = ServiceKey.of_fwmark(_U32.unpack(attrs[SVC_FWMARK])[0], 4 if family == AF_INET else 6)
    else:
        proto = PROTO_NAME[_U16.unpack(attrs[SVC_PROTOCOL])[0]]
        key = ServiceKey(proto, _address(attrs[SVC_ADDR], family), _BE16.unpack(attrs[SVC_PORT])[0])
    scheduler = attrs[SVC_SCHED_NAME].rstrip(b"\0").decode()
    flags = _FLAGS.unpack(attrs[SVC_FLAGS])[0] & ~SVC_F_HASHED
    timeout = _U32.unpack(attrs[SVC_TIMEOUT])[0]
    raw_mask = attrs[SVC_NETMASK]
    plen = (
        bin(struct.unpack("!I", raw_mask)[0]).count("1") if family == AF_INET
        else _U32.unpack(raw_mask)[0]
    )
    service = Service(
        key,
        scheduler=scheduler,
        sched_flags=sched_flag_names(scheduler, flags),
        persistence=timeout if flags & 0x1 else None,
        netmask=plen,
        one_packet=bool(flags & 0x4),
    )
    return service, _stats(attrs.get(SVC_STATS64) if with_stats else None)


def decode_dest(service: ServiceKey, payload: bytes,
                with_stats: bool = True) -> tuple[Dest, DestStats]:
    """Decode one ``IPVS_CMD_NEW_DEST`` dump message; the raw fwd_method is read."""
    attrs = parse_attrs(parse_attrs(payload, _GENL.size)[ATTR_DEST])
    family_raw = attrs.get(DEST_ADDR_FAMILY)
    family = _U16.unpack(family_raw)[0] if family_raw else _family(service.address)
    key = DestKey(service, _address(attrs[DEST_ADDR], family), _BE16.unpack(attrs[DEST_PORT])[0])

    def u32(kind: int) -> int:
        value = attrs.get(kind)
        return _U32.unpack(value)[0] if value else 0

    method = METHOD_NAME.get(u32(DEST_FWD_METHOD) & 0x7, "nat")
    dest = Dest(key, weight=u32(DEST_WEIGHT), method=method,
                upper_threshold=u32(DEST_U_THRESH), lower_threshold=u32(DEST_L_THRESH))
    if not with_stats:
        return dest, _NO_DEST_STATS
    stats = DestStats(u32(DEST_ACTIVE), u32(DEST_INACTIVE), u32(DEST_PERSIST),
                      _stats(attrs.get(DEST_STATS64)))
    return dest, stats


def error_code(payload: bytes) -> int:
    """The (positive) errno of an ``NLMSG_ERROR`` payload; 0 is an ack."""
    code: int = struct.unpack_from("=i", payload)[0]
    return -code




class DumpDecoder:
    """Decode dump messages, remembering the result by the bytes that define it.

    A dump message carries the entry's configuration first and its counters last
    (``ip_vs_genl_fill_service``/``_fill_dest``). The configuration bytes are used as
    a cache key: in a resync where nothing changed every entry is a dictionary hit
    and nothing is decoded. Call :meth:`start` before a dump and :meth:`finish`
    after it; entries not seen in that dump are forgotten.
    """

    def __init__(self) -> None:
        self._services: dict[bytes, Service] = {}
        self._dests: dict[ServiceKey, dict[bytes, Dest]] = {}
        self._seen_services: dict[bytes, Service] = {}
        self._seen_dests: dict[ServiceKey, dict[bytes, Dest]] = {}
        self._cuts: dict[tuple[int, frozenset[int]], int] = {}

    def start(self) -> None:
        self._seen_services, self._seen_dests = {}, {}

    def finish(self) -> None:
        self._services, self._dests = self._seen_services, self._seen_dests

    def _config_bytes(self, payload: bytes, counters: frozenset[int]) -> bytes:
        """The nested entry's attributes up to its first counter attribute.

        The kernel writes every entry with the same layout, so the cut found for
        one message length is tried first on the next one of that length: one
        ``unpack_from`` instead of a walk over all attributes.
        """
        start = _GENL.size + 4  # genl header, then the outer (service/dest) nla header
        cut = self._cuts.get((len(payload), counters))
        if cut is not None and _NLA.unpack_from(payload, cut)[1] & 0x3FFF in counters:
            return payload[start:cut]
        offset, end = start, len(payload)
        while offset + 4 <= end:
            length, kind = _NLA.unpack_from(payload, offset)
            if kind & 0x3FFF in counters or length < 4:
                break
            offset += (length + 3) & ~3
        self._cuts[(len(payload), counters)] = offset
        return payload[start:offset]

    def service(self, payload: bytes) -> Service:
        key = self._config_bytes(payload, _SVC_COUNTERS)
        service = self._services.get(key)
        if service is None:
            service = decode_service(payload, with_stats=False)[0]
        self._seen_services[key] = service
        return service

    def dest(self, service: ServiceKey, payload: bytes) -> Dest:
        key = self._config_bytes(payload, _DEST_COUNTERS)
        known = self._dests.get(service)
        dest = known.get(key) if known else None
        if dest is None:
            dest = decode_dest(service, payload, with_stats=False)[0]
        self._seen_dests.setdefault(service, {})[key] = dest
        return dest
