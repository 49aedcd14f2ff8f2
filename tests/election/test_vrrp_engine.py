"""VrrpElection behind its socket seam: engines on a fake wire, one shared fake clock."""

from __future__ import annotations

from ipaddress import IPv4Address, ip_address

import pytest

from speaker.config import parse_text
from speaker.election import VrrpElection, make_election
from speaker.election.vrrp_packet import VRRP_GROUP_V4, decode
from speaker.election.vrrp_socket import Received
from speaker.model import IPAddress, L2Vip


def config(name: str, address: str, priority: int, *, preempt: bool = True,
           peers: str = "[]") -> str:
    return f"""
node: {{name: {name}, router_id: {address}, interfaces: [{{name: eth0}}]}}
election:
  engine: vrrp
  preset: fast
  vrrp: {{interface: eth0, source_address: {address}, unicast_peers: {peers}}}
  groups: [{{name: front, vrid: 51, priority: {priority}, preempt: {str(preempt).lower()}}}]
dataplane: {{ipvs: false}}
services:
  - {{name: web, vip: 192.0.2.100, ports: [80], announce: l2, group: front,
     backends: [{{address: 192.0.2.31}}], health: {{type: none}}}}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """A segment: what one socket sends, every other socket receives (TTL 255)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.members: list[tuple[FakeSocket, VrrpElection]] = []
        self.log: list[tuple[IPAddress, IPAddress, bytes]] = []
        self.links: dict[str, bool] = {}

    def deliver(self, sender: FakeSocket, payload: bytes, dst: IPAddress) -> None:
        self.log.append((sender.source, dst, payload))
        for sock, engine in self.members:
            if sock is not sender and self.links.get(sock.source.exploded, True) and (
                    dst.is_multicast or dst == sock.source):
                engine.handle(sock, Received(sender.source, dst, 255, payload), self.clock.now)


class FakeSocket:
    def __init__(self, wire: Wire, interface: str, version: int, source: IPAddress) -> None:
        self.wire, self.interface, self.version, self.source = wire, interface, version, source

    def fileno(self) -> int:
        return -1

    def send(self, payload: bytes, dst: IPAddress) -> None:
        if self.wire.links.get(self.source.exploded, True):
            self.wire.deliver(self, payload, dst)

    def close(self) -> None:
        pass


def engine(wire: Wire, text: str, wakes: list[str] | None = None) -> VrrpElection:
    holder: list[VrrpElection] = []

    def open_socket(interface: str, version: int, source: IPAddress) -> FakeSocket:
        sock = FakeSocket(wire, interface, version, source)
        wire.members.append((sock, holder[0]))
        return sock

    cfg = parse_text(text)
    source = cfg.election.vrrp.source_address
    e = VrrpElection(cfg, (wakes if wakes is not None else []).append, clock=wire.clock,
                     open_socket=open_socket,  # type: ignore[arg-type]
                     link_state=lambda _i: wire.links.get(str(source), True),
                     source_of=lambda _i, _v: None)
    holder.append(e)
    return e


def run_for(wire: Wire, engines: list[VrrpElection], seconds: float, step: float = 0.01) -> None:
    end = wire.clock.now + seconds
    while wire.clock.now < end:
        wire.clock.now += step
        for e in engines:
            e.tick(wire.clock.now)


def leader(e: VrrpElection) -> bool:
    return e.leadership()["front"].leader


@pytest.fixture
def wire() -> Wire:
    return Wire(Clock())


def test_higher_priority_wins_and_adverts_are_valid(wire: Wire) -> None:
    wakes: list[str] = []
    a = engine(wire, config("a1", "192.0.2.11", 150), wakes)
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 2.0)
    assert leader(a)
    assert not leader(b)
    assert b.leadership()["front"].leader_id == "192.0.2.11"
    assert "leadership" in wakes
    src, dst, payload = wire.log[-1]
    assert dst == VRRP_GROUP_V4
    advert = decode(payload, src, dst)
    assert (advert.vrid, advert.priority, advert.interval_cs) == (51, 150, 5)
    assert advert.addresses == (IPv4Address("192.0.2.100"),)
    sent_by_a = sum(1 for s, _, _ in wire.log if s == ip_address("192.0.2.11"))
    assert 30 <= sent_by_a <= 44  # every 50 ms once master (~0.18 s to become master)


def test_penalty_hands_over_to_a_preempting_backup(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 150))
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 1.0)
    a.set_penalty(60, "uplink_down:eth1")
    assert a.leadership()["front"].priority == 90
    run_for(wire, [a, b], 1.0)
    assert leader(b)
    assert not leader(a)


def test_resign_keeps_leading_until_the_new_master_speaks(wire: Wire) -> None:
    import asyncio

    a = engine(wire, config("a1", "192.0.2.11", 150))
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 1.0)
    asyncio.run(a.resign())
    assert leader(a)  # still answering: b has not spoken yet
    assert a.leadership()["front"].state == "resigning"
    run_for(wire, [a, b], 0.2)  # b's skew time (~61 ms), then its first advert
    assert leader(b)
    assert not leader(a)
    run_for(wire, [a, b], 2.0)  # resigned: no preemption back
    assert leader(b)
    a.reclaim()
    run_for(wire, [a, b], 1.0)
    assert leader(a)


def test_link_down_gives_up_and_link_up_returns(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 150))
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 1.0)
    wire.links["192.0.2.11"] = False
    run_for(wire, [a, b], 1.0)
    assert not leader(a)
    assert leader(b)
    assert a.status()["groups"]["front"]["link_up"] is False  # type: ignore[index]
    wire.links["192.0.2.11"] = True
    run_for(wire, [a, b], 2.0)
    assert leader(a)  # preempts back
    assert not leader(b)


def test_no_preempt_keeps_the_current_master(wire: Wire) -> None:
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [b], 1.0)
    a = engine(wire, config("a1", "192.0.2.11", 150, preempt=False))
    run_for(wire, [a, b], 2.0)
    assert leader(b)
    assert not leader(a)


def test_unicast_peers(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 150, peers="[192.0.2.12]"))
    b = engine(wire, config("a2", "192.0.2.12", 100, peers="[192.0.2.11]"))
    run_for(wire, [a, b], 1.5)
    assert leader(a)
    assert not leader(b)
    assert {dst for _, dst, _ in wire.log} == {ip_address("192.0.2.12")}


def test_bad_ttl_is_discarded(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 100))
    b = engine(wire, config("a2", "192.0.2.12", 200))
    run_for(wire, [b], 1.0)
    _, _, payload = wire.log[-1]
    run_for(wire, [a], 0.01)  # a opens its socket
    sock = next(s for s, e in wire.members if e is a)
    for _ in range(50):  # higher-priority adverts with TTL 64 must not hold a back
        wire.clock.now += 0.1
        a.handle(sock, Received(ip_address("192.0.2.12"), VRRP_GROUP_V4, 64,
                                payload), wire.clock.now)  # type: ignore[arg-type]
        a.tick(wire.clock.now)
    assert leader(a)


def test_conflict_rule_and_reconfigure_keeps_state(wire: Wire) -> None:
    a = engine(wire, config("a1", "192.0.2.11", 150))
    b = engine(wire, config("a2", "192.0.2.12", 100))
    run_for(wire, [a, b], 1.0)
    vip = L2Vip(IPv4Address("192.0.2.100"), ("eth0",), "front")
    sent = len(wire.log)
    assert a.resolve_conflict(vip, "02:00:00:00:00:0c") is False  # master keeps, adverts now
    assert len(wire.log) == sent + 1
    assert b.resolve_conflict(vip, "02:00:00:00:00:0b") is True
    a.reconfigure(parse_text(config("a1", "192.0.2.11", 120)))
    assert leader(a)
    assert a.leadership()["front"].priority == 120


def test_make_election_picks_the_engine() -> None:
    cfg = parse_text(config("a1", "192.0.2.11", 150))
    assert isinstance(make_election(cfg, lambda _e: None), VrrpElection)
    single = make_election(cfg.model_copy(update={"election": cfg.election.model_copy(
        update={"engine": "single"})}), lambda _e: None)
    assert single.leadership()["front"].leader
