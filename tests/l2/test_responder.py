"""L2Responder logic behind the Port seam: fake interfaces, injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from speaker.config import parse_text
from speaker.l2 import L2Options, L2Responder, bpf, frames
from speaker.model import L2Vip

CONFIG = parse_text("""
node:
  name: a1
  router_id: 192.0.2.11
  interfaces: [{name: eth0}]
""")
MAC = frames.mac_bytes("02:00:00:00:00:0a")
OTHER = "02:00:00:00:00:0b"
VIP4 = L2Vip(IPv4Address("192.0.2.100"), ("eth0",), "web")
VIP6 = L2Vip(IPv6Address("2001:db8::100"), ("eth0",), "web")


class FakePort:
    def __init__(self, name: str) -> None:
        self.name = name
        self.mac = MAC
        self.sent: list[Ether] = []
        self.inbox: list[bytes] = []
        self.prog: list[bpf.Insn] = []
        self.gone = False
        self.closed = False

    def fileno(self) -> int:
        return -1

    def set_filter(self, prog: list[bpf.Insn]) -> None:
        self.prog = prog

    def send(self, frame: bytes) -> None:
        self.sent.append(Ether(frame))

    def receive(self) -> Iterator[bytes]:
        # The kernel would run the filter first.
        frames_in, self.inbox = self.inbox, []
        yield from (f for f in frames_in if bpf.match(self.prog, f))

    def close(self) -> None:
        self.closed = True

    def stale(self) -> bool:
        return self.gone


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig() -> tuple[L2Responder, FakePort, Clock, list[str]]:
    ports: dict[str, FakePort] = {}
    clock = Clock()
    wakes: list[str] = []

    def open_port(name: str) -> FakePort:
        port = ports.get(name)
        if port is None or port.gone:
            port = ports[name] = FakePort(name)
        return port

    responder = L2Responder(CONFIG, wakes.append, clock=clock, open_port=open_port,
                            options=L2Options(announce_count=3, announce_spacing=1.0,
                                              probe_interval=5.0, conflict_grace=0.3))
    return responder, open_port("eth0"), clock, wakes


def who_has(vip: str, src: str = "192.0.2.50", mac: str = "02:00:00:00:00:c1") -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=src,
                                                               pdst=vip))


def claim(vip: str, mac: str = OTHER) -> bytes:
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc=mac, psrc=vip,
                                                               hwdst=mac, pdst=vip))


def test_takeover_announces_before_set_returns(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, _, _ = rig
    responder.apply([VIP4, VIP6])
    ops = [(p[ARP].op, p[ARP].psrc) for p in port.sent if ARP in p]
    assert ops == [(1, "192.0.2.100"), (2, "192.0.2.100")]
    nas = [p for p in port.sent if ICMPv6ND_NA in p]
    assert len(nas) == 1
    assert nas[0][ICMPv6ND_NA].O == 1
    assert responder.owned() == {VIP4, VIP6}


def test_repeats_then_stops(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, clock, _ = rig
    responder.apply([VIP4])
    port.sent.clear()
    for _ in range(5):
        clock.now += 1.0
        responder.tick(clock.now)
    garps = [p for p in port.sent if ARP in p and p[ARP].pdst == p[ARP].psrc]
    assert len(garps) == 2 * 2  # announce_count=3: first at set(), two repeats


def test_answers_only_while_owned(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, _, _ = rig
    responder.apply([VIP4, VIP6])
    port.sent.clear()
    port.inbox.append(who_has("192.0.2.100"))
    port.inbox.append(who_has("192.0.2.99"))
    ns = Ether(src="02:00:00:00:00:c1") / IPv6(src="2001:db8::50", hlim=255) / ICMPv6ND_NS(
        tgt="2001:db8::100")
    port.inbox.append(bytes(ns))
    responder.on_readable(port)
    assert [p[ARP].pdst for p in port.sent if ARP in p] == ["192.0.2.50"]
    assert [p[IPv6].dst for p in port.sent if ICMPv6ND_NA in p] == ["2001:db8::50"]
    responder.apply([])
    port.sent.clear()
    port.inbox.append(who_has("192.0.2.100"))
    responder.on_readable(port)
    assert port.sent == []
    assert responder.owned() == frozenset()


def test_ns_with_wrong_hop_limit_is_ignored(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, _, _ = rig
    responder.apply([VIP6])
    port.sent.clear()
    port.inbox.append(bytes(Ether() / IPv6(src="2001:db8::50", hlim=64) / ICMPv6ND_NS(
        tgt="2001:db8::100")))
    responder.on_readable(port)
    assert port.sent == []


def test_duplicate_owner_confirmed_after_grace(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, clock, wakes = rig
    responder.apply([VIP4])
    port.inbox.append(claim("192.0.2.100"))
    responder.on_readable(port)
    assert responder.status()["conflicts"] == []  # a handover looks like this too
    clock.now += 0.35
    port.sent.clear()
    responder.tick(clock.now)
    probes = [p for p in port.sent if ARP in p and p[ARP].psrc == "0.0.0.0"]
    assert probes, "a suspect is re-probed after the grace period"
    port.inbox.append(claim("192.0.2.100"))
    responder.on_readable(port)
    conflicts = responder.conflicts()
    assert [(c["vip"], c["other_mac"]) for c in conflicts] == [("192.0.2.100", OTHER)]
    assert wakes == ["vip_conflict"]
    assert responder.owned() == {VIP4}  # no hook: report only


def test_conflict_hook_yields_and_resumes(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, clock, _ = rig
    responder.conflict_hook = lambda vip, mac: mac == OTHER
    responder.apply([VIP4])
    for _ in range(2):
        port.inbox.append(claim("192.0.2.100"))
        responder.on_readable(port)
        clock.now += 0.4
    assert responder.owned() == frozenset()
    port.sent.clear()
    port.inbox.append(who_has("192.0.2.100"))
    responder.on_readable(port)
    assert not [p for p in port.sent if ARP in p and p[ARP].op == 2]
    clock.now += 20.0  # the other owner went silent
    responder.tick(clock.now)
    assert responder.owned() == {VIP4}
    assert any(ARP in p and p[ARP].op == 1 and p[ARP].psrc == "192.0.2.100" for p in port.sent)


def test_own_frames_are_not_conflicts(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, clock, _ = rig
    responder.apply([VIP4])
    for _ in range(3):
        port.inbox.append(claim("192.0.2.100", mac="02:00:00:00:00:0a"))
        responder.on_readable(port)
        clock.now += 0.5
    assert responder.conflicts() == []


def test_async_set_is_apply(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, _, _ = rig
    asyncio.run(responder.set([VIP4]))
    assert responder.owned() == {VIP4}
    assert len(port.sent) == 2


def test_recreated_interface_is_reopened_and_announced(rig) -> None:  # type: ignore[no-untyped-def]
    responder, port, clock, _ = rig
    responder.apply([VIP4])
    responder.tick(clock.now)
    port.gone = True  # e.g. the VLAN interface was deleted and created again
    clock.now += 2.0
    responder.tick(clock.now)
    assert port.closed
    new = responder._ports["eth0"]
    assert new is not port
    assert [p[ARP].op for p in new.sent if ARP in p and p[ARP].psrc == "192.0.2.100"][:2] == [
        1, 2]
    new.inbox.append(who_has("192.0.2.100"))
    responder.on_readable(new)
    assert any(ARP in p and p[ARP].op == 2 and p[ARP].pdst == "192.0.2.50" for p in new.sent)
