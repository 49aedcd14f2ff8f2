"""The reconciler observes the BGP speaker through `accepted()`: a VIP that is
held but not yet sent (session not up, e.g. a TCP-MD5 mismatch) is neither
re-announced nor logged on every resync, while `announced()` stays honest."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network

from speaker.config import parse_text
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.model import BgpAnnouncement
from speaker.reconcile.apply import Parts
from speaker.reconcile.loop import Reconciler

CONFIG = """
node: {name: lb1, router_id: 192.0.2.10, interfaces: [{name: eth0, role: client}]}
bgp: {local_asn: 65010, peers: [{name: r1, address: 192.0.2.1, asn: 65000}]}
services:
  - {name: web, vip: 203.0.113.10, ports: [80], backends: [{address: 198.51.100.11}],
     health: {type: none}}
"""


class NeverSent(FakeBgp):
    """A speaker whose session never comes up: it holds what set() gave it, but
    nothing reaches a router."""

    def announced(self) -> frozenset[BgpAnnouncement]:
        return frozenset()


def test_held_but_unsent_vip_is_not_reannounced_every_resync() -> None:
    cfg = parse_text(CONFIG)
    bgp = NeverSent(cfg)
    health = FakeHealth(cfg)
    rec = Reconciler(cfg, Parts(FakeAddresses(), FakeForwarder(), bgp, FakeL2(cfg)), health,
                     FakeElection(cfg), link_up=lambda _name: True)

    async def passes() -> list[int]:
        return [(await rec.reconcile_once()).ops for _ in range(3)]

    ops = asyncio.run(passes())
    assert ops[0] > 0
    assert ops[1:] == [0, 0], "nothing planned again for a VIP the speaker holds"
    assert bgp.history == [frozenset({BgpAnnouncement(ip_network("203.0.113.10/32"))})]
    assert bgp.announced() == frozenset()


def test_status_shows_a_decided_but_unsent_vip_as_unsent() -> None:
    from speaker.cli.render import _where

    unsent = {"bgp": {"announced": False, "desired": True, "to": []}, "l2": {"owned": False}}
    sent = {"bgp": {"announced": True, "desired": True, "to": ["r1"]}, "l2": {"owned": False}}
    assert _where(unsent) == "bgp:unsent"
    assert _where(sent) == "bgp->r1"
