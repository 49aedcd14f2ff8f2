"""The responder's hot path: reply tables per interface and one frame in, one reply out.

`Answerer.handle(port, frame)` answers an ARP request or a neighbour
solicitation for an answered VIP from a prebuilt template (slicing only: no
scapy, no ipaddress objects), and returns a *foreign claim* (another MAC
announcing or answering for one of our VIPs) for the conflict tracker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv6Address

from prometheus_client import Counter

from speaker.l2 import frames
from speaker.l2 import metrics as m
from speaker.l2.port import Port
from speaker.l2.wellformed import arp_header_error, arp_request_error, ns_error
from speaker.model import IPAddress, L2Vip

Claim = tuple[IPAddress, bytes]
"""(our VIP, the other MAC that claims it)."""


class PortMetrics:
    """Metric children of one interface, resolved once (labels() costs a lookup)."""

    __slots__ = ("_name", "_rejected", "arp_replies", "arp_requests", "garp", "na_sent",
                 "na_unsolicited", "ns_received", "send_errors")

    def __init__(self, name: str) -> None:
        self._name = name
        self._rejected: dict[str, Counter] = {}
        self.arp_requests = m.ARP_REQUESTS.labels(name)
        self.arp_replies = m.ARP_REPLIES.labels(name)
        self.garp = m.GARP_SENT.labels(name)
        self.ns_received = m.NDP_SOLICITATIONS.labels(name)
        self.na_sent = m.NDP_ADVERTISEMENTS.labels(name)
        self.na_unsolicited = m.NDP_UNSOLICITED.labels(name)
        self.send_errors = m.SEND_ERRORS.labels(name)

    def reject(self, reason: str) -> None:
        """Count one frame that asked for a VIP of ours but was not answered."""
        child = self._rejected.get(reason)
        if child is None:
            child = self._rejected[reason] = m.FRAMES_REJECTED.labels(self._name, reason)
        child.inc()


class Answerer:
    """Reply templates per (interface, VIP) and the per-frame logic."""

    def __init__(self) -> None:
        self.metrics: dict[str, PortMetrics] = {}
        self._arp: dict[str, dict[bytes, frames.ArpReplyTemplate]] = {}
        self._nd: dict[str, dict[bytes, frames.NaReplyTemplate]] = {}
        self._claimable: frozenset[bytes] = frozenset()

    def rebuild(self, answering: Iterable[L2Vip], claimable: Iterable[IPAddress],
                ports: Mapping[str, Port]) -> None:
        """Answer for `answering` on their interfaces (those in `ports`); report claims
        by others for any of `claimable`. Replaces the tables in one assignment."""
        arp: dict[str, dict[bytes, frames.ArpReplyTemplate]] = {}
        nd: dict[str, dict[bytes, frames.NaReplyTemplate]] = {}
        for vip in answering:
            for name in vip.interfaces:
                port = ports.get(name)
                if port is None:
                    continue
                if isinstance(vip.address, IPv4Address):
                    arp.setdefault(name, {})[vip.address.packed] = frames.ArpReplyTemplate(
                        port.mac, vip.address)
                else:
                    nd.setdefault(name, {})[vip.address.packed] = frames.NaReplyTemplate(
                        port.mac, vip.address)
        self._arp, self._nd = arp, nd
        self._claimable = frozenset(a.packed for a in claimable)

    def answering(self, name: str) -> int:
        """How many VIPs are answered on interface `name`."""
        return len(self._arp.get(name, {})) + len(self._nd.get(name, {}))

    def clear(self) -> None:
        """Answer nothing."""
        self._arp, self._nd, self._claimable = {}, {}, frozenset()

    def handle(self, port: Port, frame: bytes) -> Claim | None:
        """Answer `frame` if it asks for an answered VIP; return a foreign claim if any."""
        ethertype = frame[12:14]
        if ethertype == b"\x08\x06" and len(frame) >= 42:
            return self._arp_frame(port, frame)
        if ethertype == b"\x86\xdd" and len(frame) >= 78 and frame[20] == 58:
            return self._ndp_frame(port, frame)
        return None

    def _arp_frame(self, port: Port, frame: bytes) -> Claim | None:
        sha = frame[22:28]
        if sha == port.mac or frame[6:12] == port.mac:
            return None
        spa, tpa = frame[28:32], frame[38:42]
        if arp_header_error(frame) is not None:
            if tpa in self._arp.get(port.name, {}):
                self.metrics[port.name].reject("arp_bad_header")
            return None
        if frame[20:22] == b"\x00\x01" and spa != tpa:  # a request, not a gratuitous ARP
            tmpl = self._arp.get(port.name, {}).get(tpa)
            if tmpl is not None:
                pm = self.metrics[port.name]
                pm.arp_requests.inc()
                error = arp_request_error(frame, port.mac)
                if error is not None:
                    pm.reject(error)
                    return None
                try:
                    port.send(tmpl.fill(sha, spa))
                    pm.arp_replies.inc()
                except OSError:
                    pm.send_errors.inc()
                return None
        if spa in self._claimable:
            return IPv4Address(spa), sha
        return None

    def _ndp_frame(self, port: Port, frame: bytes) -> Claim | None:
        src_mac = frame[6:12]
        if src_mac == port.mac:
            return None
        target = frame[62:78]
        if frame[54] == frames.ICMP6_NS:
            tmpl = self._nd.get(port.name, {}).get(target)
            if tmpl is not None:
                pm = self.metrics[port.name]
                pm.ns_received.inc()
                error = ns_error(frame, port.mac)
                if error is not None:
                    pm.reject(error)
                    return None
                try:
                    port.send(tmpl.fill(src_mac, frame[22:38]))
                    pm.na_sent.inc()
                except OSError:
                    pm.send_errors.inc()
        elif (frame[54] == frames.ICMP6_NA and frame[21] == 255 and frame[55] == 0
              and target in self._claimable):  # link-local NDP only (RFC 4861 7.1.2)
            return IPv6Address(target), src_mac
        return None
