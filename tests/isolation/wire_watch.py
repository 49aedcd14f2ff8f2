"""Run in a client namespace: watch ARP answers and VRRP adverts on the wire.

    ip netns exec NS python wire_watch.py arp IFACE VIP SECONDS INTERVAL
        one ARP request for VIP every INTERVAL s; each carries a sequence number in
        its sender MAC (02:ee:SEQ), so every reply (sent to that MAC, seen here
        promiscuously) is matched to its request. Prints JSON: per request its send
        time, the answering MACs and the first answer's latency (kernel timestamps).
    ip netns exec NS python wire_watch.py vrrp IFACE SECONDS
        every VRRP advert seen; prints JSON: per source the longest gap between adverts.
    ip netns exec NS python wire_watch.py forge IFACE SRC VRID PRIORITY INTERVAL_CS [COUNT]
        send COUNT forged VRRPv3 adverts (TTL 255, valid checksum) from SRC.

Used by tests/isolation (lab tests) and bench/storm.py.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC = 1, 1
PACKET_OUTGOING = 4
CLIENT_IP = "192.0.2.50"


def _packet_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
    sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
    sock.settimeout(0.1)
    return sock


def _stamp(anc: list[tuple[int, int, bytes]]) -> float:
    sec, nsec = struct.unpack("ll", anc[0][2][:16])
    return sec + nsec / 1e9


def arp_request(seq: int, target: str) -> bytes:
    """Broadcast 'who has target' from sender MAC 02:ee:SEQ."""
    sha = b"\x02\xee" + struct.pack("!I", seq)
    return (b"\xff" * 6 + sha + struct.pack("!H", ETH_P_ARP)
            + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + sha
            + socket.inet_aton(CLIENT_IP) + b"\x00" * 6 + socket.inet_aton(target)
            + b"\x00" * 18)


def _arp_receiver(ifname: str, seconds: float, ready: Connection, out: Connection) -> None:
    sock = _packet_socket(ifname)
    sent: dict[int, float] = {}
    answers: dict[int, dict[str, float]] = {}
    ready.send(True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, anc, _flags, addr = sock.recvmsg(128, 64)
        except TimeoutError:
            continue
        if len(data) < 42 or data[12:14] != b"\x08\x06" or not anc:
            continue
        if data[21] == 1 and addr[2] == PACKET_OUTGOING and data[6:8] == b"\x02\xee":
            sent[struct.unpack_from("!I", data, 8)[0]] = _stamp(anc)
        elif data[21] == 2 and data[0:2] == b"\x02\xee":
            seq = struct.unpack_from("!I", data, 2)[0]
            mac = ":".join(f"{b:02x}" for b in data[22:28])
            answers.setdefault(seq, {}).setdefault(mac, _stamp(anc))
    out.send((sent, answers))
    sock.close()


def watch_arp(ifname: str, vip: str, seconds: float, interval: float) -> dict[str, Any]:
    """Probe `vip` every `interval` for `seconds`; see the module docstring."""
    ctx = multiprocessing.get_context("fork")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    rx = ctx.Process(target=_arp_receiver, args=(ifname, seconds + 0.5, ready_w, out_w))
    rx.start()
    ready_r.recv()
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    tx.bind((ifname, ETH_P_ARP))
    start = time.perf_counter()
    seq = 0
    while time.perf_counter() - start < seconds:
        tx.send(arp_request(seq, vip))
        seq += 1
        time.sleep(max(0.0, start + seq * interval - time.perf_counter()))
    sent, answers = out_r.recv()
    rx.join()
    tx.close()
    requests = []
    for s in range(seq):
        at = sent.get(s)
        got = answers.get(s, {})
        first = min(got.values()) if got else None
        requests.append({"seq": s, "at": at, "macs": sorted(got),
                         "latency_ms": (first - at) * 1e3 if at and first else None})
    return {"requests": requests}


def watch_vrrp(ifname: str, seconds: float) -> dict[str, Any]:
    """Adverts seen per source: count and longest gap (seconds)."""
    sock = _packet_socket(ifname)
    last: dict[str, float] = {}
    gaps: dict[str, float] = {}
    counts: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, anc, _flags, _addr = sock.recvmsg(256, 64)
        except TimeoutError:
            continue
        if len(data) < 34 or data[12:14] != b"\x08\x00" or data[23] != 112 or not anc:
            continue
        src = socket.inet_ntoa(data[26:30])
        stamp = _stamp(anc)
        if src in last:
            gaps[src] = max(gaps.get(src, 0.0), stamp - last[src])
        last[src] = stamp
        counts[src] = counts.get(src, 0) + 1
    sock.close()
    return {"sources": {s: {"adverts": counts[s], "longest_gap_s": gaps.get(s, 0.0)}
                        for s in counts}}


def forge(ifname: str, src: str, vrid: int, priority: int, interval_cs: int,
          count: int) -> dict[str, Any]:
    """Send forged VRRPv3 adverts for 192.0.2.100 (scapy computes the checksum)."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.layers.vrrp import VRRPv3
    from scapy.sendrecv import sendp

    frame = (Ether(src="02:00:00:00:00:66", dst="01:00:5e:00:00:12")
             / IP(src=src, dst="224.0.0.18", ttl=255, proto=112)
             / VRRPv3(vrid=vrid, priority=priority, adv=interval_cs, ipcount=1,
                      addrlist=["192.0.2.100"]))
    sendp(frame, iface=ifname, count=count, inter=0.05, verbose=False)
    return {"sent": count}


def hostile(ifname: str, owner_mac: str) -> dict[str, Any]:
    """Send each hostile (and one good) ARP request / NS for the VIPs; report which got an
    answer from `owner_mac` within 0.3 s."""
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import ARP, Ether

    me = open(f"/sys/class/net/{ifname}/address").read().strip()  # noqa: SIM115
    vip4, vip6, group6, group_mac = ("192.0.2.100", "2001:db8::100", "ff02::1:ff00:100",
                                     "33:33:ff:00:01:00")

    def arp(dst: str = "ff:ff:ff:ff:ff:ff", src: str = me, **kw: Any) -> bytes:
        return bytes(Ether(dst=dst, src=src) / ARP(**{"op": 1, "hwsrc": src, "psrc": CLIENT_IP,
                                                      "pdst": vip4, **kw}))

    def ns(dst_mac: str = group_mac, hlim: int = 255, src: str = "2001:db8::50",
           lladdr: str | None = me, cksum: int | None = None) -> bytes:
        icmp = ICMPv6ND_NS(tgt=vip6)
        if cksum is not None:
            icmp.cksum = cksum
        pkt = Ether(dst=dst_mac, src=me) / IPv6(src=src, dst=group6, hlim=hlim) / icmp
        return bytes(pkt / ICMPv6NDOptSrcLLAddr(lladdr=lladdr) if lladdr else pkt)

    cases = {
        "arp_good": arp(), "arp_other_unicast_dst": arp(dst="02:00:00:00:00:99"),
        "arp_broadcast_sender": arp(src="ff:ff:ff:ff:ff:ff"),
        "arp_multicast_sha": arp(hwsrc="01:00:5e:00:00:01"), "arp_bad_hlen": arp(hwlen=8),
        "arp_bad_ptype": arp(ptype=0x86DD),
        "ns_good": ns(), "ns_other_unicast_dst": ns(dst_mac="02:00:00:00:00:99"),
        "ns_hop_limit_64": ns(hlim=64), "ns_bad_checksum": ns(cksum=0x1234),
        "ns_unspecified_with_lladdr": ns(src="::"),
    }
    owner = owner_mac.lower()
    sock = _packet_socket(ifname)
    sock.settimeout(0.05)
    answered: dict[str, bool] = {}
    for name, frame in cases.items():
        while True:  # drain what is queued
            try:
                sock.recv(2048)
            except TimeoutError:
                break
        sock.send(frame)
        deadline = time.monotonic() + 0.3
        got = False
        while time.monotonic() < deadline and not got:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            src = ":".join(f"{b:02x}" for b in data[6:12])
            to_me = data[0:6] == bytes.fromhex(me.replace(":", ""))
            is_arp_reply = data[12:14] == b"\x08\x06" and data[21] == 2 and to_me
            is_na = data[12:14] == b"\x86\xdd" and len(data) > 54 and data[54] == 136
            got = src == owner and (is_arp_reply or is_na)
        answered[name] = got
    sock.close()
    return {"answered": answered}


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "arp":
        result = watch_arp(args[0], args[1], float(args[2]), float(args[3]))
    elif mode == "vrrp":
        result = watch_vrrp(args[0], float(args[1]))
    elif mode == "hostile":
        result = hostile(args[0], args[1])
    elif mode == "forge":
        result = forge(args[0], args[1], int(args[2]), int(args[3]), int(args[4]),
                       int(args[5]) if len(args) > 5 else 1)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
