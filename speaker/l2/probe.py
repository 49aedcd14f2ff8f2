"""`speaker probe VIP`: who answers for a VIP on a segment (a diagnostic, built with
scapy; the responder's hot path stays on prebuilt bytes).

An IPv4 VIP gets RFC 5227 ARP probes (sender address 0.0.0.0, so no neighbour cache
on the segment learns anything from them); an IPv6 VIP gets duplicate-address-style
neighbour solicitations (source ::, no link-layer option), whose answers go to the
all-nodes group. Every MAC that answers is listed with how many answers it sent: one
MAC is the healthy case, two or more is a duplicate owner (a VIP configured twice, a
stale keepalived, a backup that did not let go).

The appliance's own responder never answers frames from its own MAC, so on the owner
itself the probe lists only *other* answerers: none is the healthy case there.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from speaker.l2 import frames
from speaker.model import IPAddress


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """MAC -> answers, for one VIP on one interface."""

    vip: IPAddress
    interface: str
    sent: int
    answers: dict[str, int]


def interface_mac(name: str, sysfs: Path = Path("/sys/class/net")) -> str:
    """The MAC address of an interface (ValueError if it does not exist)."""
    try:
        return (sysfs / name / "address").read_text().strip()
    except OSError:
        raise ValueError(f"no interface {name!r} here") from None


def probe(interface: str, vip: IPAddress, count: int = 3, wait: float = 1.0,
          spacing: float = 0.2) -> ProbeResult:
    """Send `count` probes for `vip` out of `interface` and collect the answers for
    `wait` seconds after the last one. Needs CAP_NET_RAW (root)."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import AsyncSniffer, sendp

    mac = interface_mac(interface)
    target = str(vip)
    if isinstance(vip, IPv4Address):
        frame = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(
            op=1, hwsrc=mac, psrc="0.0.0.0", hwdst="00:00:00:00:00:00", pdst=target)
        bpf = "arp"

        def answer(pkt: object) -> str | None:
            arp = pkt.getlayer(ARP) if hasattr(pkt, "getlayer") else None
            if arp is not None and arp.op == 2 and arp.psrc == target:
                return str(arp.hwsrc).lower()
            return None
    else:
        group, group_mac = frames.solicited_node(IPv6Address(target))
        frame = (Ether(dst=frames.mac_text(group_mac), src=mac)
                 / IPv6(src="::", dst=str(group), hlim=255) / ICMPv6ND_NS(tgt=target))
        bpf = "icmp6"

        def answer(pkt: object) -> str | None:
            na = pkt.getlayer(ICMPv6ND_NA) if hasattr(pkt, "getlayer") else None
            if na is not None and str(IPv6Address(na.tgt)) == target:
                return str(pkt.getlayer(Ether).src).lower()  # type: ignore[attr-defined]
            return None

    seen: Counter[str] = Counter()

    def record(pkt: object) -> None:
        who = answer(pkt)
        if who is not None and who != mac.lower():
            seen[who] += 1

    sniffer = AsyncSniffer(iface=interface, filter=bpf, prn=record, store=False)
    sniffer.start()
    try:
        time.sleep(0.2)  # the capture is attached before the first probe leaves
        for i in range(count):
            sendp(frame, iface=interface, verbose=False)
            if i + 1 < count:
                time.sleep(spacing)
        time.sleep(wait)
    finally:
        sniffer.stop()
    return ProbeResult(vip, interface, count, dict(seen))
