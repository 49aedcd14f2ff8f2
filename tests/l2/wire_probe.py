"""Run in the client namespace: check adverts and replies on the wire with scapy.

    ip netns exec NS python wire_probe.py IFACE VIP4 VIP6 OWNER_MAC
prints one JSON object with what was seen.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

from scapy.layers.inet import IP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6, in6_getnsma, in6_getnsmac
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vrrp import VRRPv3
from scapy.utils6 import inet_pton

ETH_P_ALL = 0x0003


def capture(sock: socket.socket, seconds: float) -> list[Ether]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if addr[2] != 4:  # not our own outgoing frames
            out.append(Ether(data))
    return out


def checksum_ok(pkt: Ether, layer: type, name: str = "chksum") -> bool:
    wire = getattr(pkt[layer], name)
    copy = Ether(bytes(pkt))
    delattr(copy[layer], name)
    return bool(getattr(Ether(bytes(copy))[layer], name) == wire)


def main() -> None:
    iface, vip4, vip6, owner = sys.argv[1:5]
    mac = Path(f"/sys/class/net/{iface}/address").read_text().strip()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, ETH_P_ALL))
    sock.settimeout(0.05)
    result: dict[str, object] = {}
    frames = capture(sock, 1.0)
    v4 = [f for f in frames if VRRPv3 in f and IP in f]
    v6 = [f for f in frames if VRRPv3 in f and IPv6 in f]
    if v4:
        f = v4[-1]
        result["vrrp4"] = {"ttl": f[IP].ttl, "dst": f[IP].dst, "proto": f[IP].proto,
                           "src_mac": f.src, "checksum_ok": checksum_ok(f, VRRPv3),
                           "vrid": f[VRRPv3].vrid, "priority": f[VRRPv3].priority,
                           "adv_cs": f[VRRPv3].adv, "addrs": list(f[VRRPv3].addrlist)}
    if v6:
        f = v6[-1]
        result["vrrp6"] = {"hlim": f[IPv6].hlim, "dst": f[IPv6].dst, "nh": f[IPv6].nh,
                           "src": f[IPv6].src, "checksum_ok": checksum_ok(f, VRRPv3),
                           "vrid": f[VRRPv3].vrid, "addrs": list(f[VRRPv3].addrlist)}

    def exchange(frame: Ether, want: type) -> list[Ether]:
        sock.send(bytes(frame))
        return [f for f in capture(sock, 0.3) if want in f]

    probe = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc="0.0.0.0",
                                                          pdst=vip4)
    result["arp_probe"] = [(f[ARP].op, f[ARP].hwsrc, f[ARP].psrc, f.dst)
                           for f in exchange(probe, ARP) if f[ARP].op == 2]
    tagged = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=100)
              / ARP(op=1, hwsrc=mac, psrc="192.0.2.50", pdst=vip4))
    result["arp_tagged"] = len([f for f in exchange(tagged, ARP) if f[ARP].op == 2])
    untagged = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac,
                                                             psrc="192.0.2.50", pdst=vip4)
    result["arp_untagged"] = len([f for f in exchange(untagged, ARP) if f[ARP].op == 2])
    src6 = "2001:db8::50"
    base = Ether(src=mac, dst=owner) / IPv6(src=src6, dst=vip6, hlim=255)
    unicast = exchange(base / ICMPv6ND_NS(tgt=vip6), ICMPv6ND_NA)
    result["ns_unicast"] = [(f.src, f[IPv6].dst, f[ICMPv6ND_NA].R, f[ICMPv6ND_NA].S,
                             f[ICMPv6ND_NA].O, checksum_ok(f, ICMPv6ND_NA, "cksum"))
                            for f in unicast]
    group = in6_getnsma(inet_pton(socket.AF_INET6, vip6))
    dad = (Ether(src=mac, dst=in6_getnsmac(group)) / IPv6(
        src="::", dst=socket.inet_ntop(socket.AF_INET6, group), hlim=255)
           / ICMPv6ND_NS(tgt=vip6))
    result["ns_dad"] = [(f.src, f[IPv6].dst, f[ICMPv6ND_NA].S, f[ICMPv6ND_NA].O)
                        for f in exchange(dad, ICMPv6ND_NA)]
    bad = Ether(src=mac, dst=owner) / IPv6(src=src6, dst=vip6, hlim=64) / ICMPv6ND_NS(tgt=vip6)
    result["ns_hlim64"] = len(exchange(bad, ICMPv6ND_NA))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
