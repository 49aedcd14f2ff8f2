"""The responder's hot path: reply tables per interface and one frame in, one reply out.

`Answerer.handle(port, frame)` answers an ARP request or a neighbour
solicitation for an answered VIP from a prebuilt template (slicing only: no
scapy, no ipaddress objects), and returns a *foreign claim* (another MAC
announcing or answering for one of our VIPs) for the conflict tracker.
"""

from __future__ import annotations

import contextlib
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


class VipMetrics:
    """Counter children of one (interface, VIP), resolved once: ARP request / reply /
    gratuitous ARP for an IPv4 VIP, solicitation / advertisement / unsolicited NA for
    an IPv6 one."""

    __slots__ = ("announced", "replies", "requests")

    def __init__(self, interface: str, vip: str, v6: bool) -> None:
        req, rep, ann = ((m.NDP_SOLICITATIONS, m.NDP_ADVERTISEMENTS, m.NDP_UNSOLICITED) if v6
                         else (m.ARP_REQUESTS, m.ARP_REPLIES, m.GARP_SENT))
        self.requests = req.labels(interface, vip)
        self.replies = rep.labels(interface, vip)
        self.announced = ann.labels(interface, vip)


class PortMetrics:
    """Metric children of one interface, resolved once (labels() costs a lookup)."""

    __slots__ = ("_name", "_rejected", "_vips", "send_errors")

    def __init__(self, name: str) -> None:
        self._name = name
        self._rejected: dict[str, Counter] = {}
        self._vips: dict[bytes, VipMetrics] = {}
        self.send_errors = m.SEND_ERRORS.labels(name)

    def vip(self, packed: bytes) -> VipMetrics:
        """The counters of one VIP (its packed address) on this interface."""
        found = self._vips.get(packed)
        if found is None:
            v6 = len(packed) == 16
            text = str(IPv6Address(packed) if v6 else IPv4Address(packed))
            found = self._vips[packed] = VipMetrics(self._name, text, v6)
        return found

    def keep(self, packed: Iterable[bytes]) -> None:
        """Drop the series of VIPs not in `packed` (they left the config)."""
        wanted = set(packed)
        for gone in [p for p in self._vips if p not in wanted]:
            del self._vips[gone]
            text = str(IPv4Address(gone) if len(gone) == 4 else IPv6Address(gone))
            for metric in m.PER_VIP:
                with contextlib.suppress(KeyError):
                    metric.remove(self._name, text)

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
        for name, pm in self.metrics.items():
            pm.keep(self._claimable | arp.get(name, {}).keys() | nd.get(name, {}).keys())

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
                vm = pm.vip(tpa)
                vm.requests.inc()
                error = arp_request_error(frame, port.mac)
                if error is not None:
                    pm.reject(error)
                    return None
                try:
                    port.send(tmpl.fill(sha, spa))
                    vm.replies.inc()
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
                vm = pm.vip(target)
                vm.requests.inc()
                error = ns_error(frame, port.mac)
                if error is not None:
                    pm.reject(error)
                    return None
                try:
                    port.send(tmpl.fill(src_mac, frame[22:38]))
                    vm.replies.inc()
                except OSError:
                    pm.send_errors.inc()
        elif (frame[54] == frames.ICMP6_NA and frame[21] == 255 and frame[55] == 0
              and target in self._claimable):  # link-local NDP only (RFC 4861 7.1.2)
            return IPv6Address(target), src_mac
        return None
