"""The reconciler tells the DNS part the names of VIPs that are announced, not decided."""

from __future__ import annotations

import asyncio
import copy
from ipaddress import ip_address

import yaml
from test_reconcile import CONFIG, healthy

from speaker.config import parse_text
from speaker.fakes import FakeAddresses, FakeBgp, FakeDns, FakeElection, FakeForwarder, FakeL2
from speaker.reconcile.apply import Parts
from speaker.reconcile.loop import Reconciler

SECRET = "8iqUvfFnWP8POtHjWf6CoysnftkdPzNRmYK73djauHw="


def dns_config() -> dict[str, object]:
    data = copy.deepcopy(CONFIG)
    data["services"][0]["dns"] = {"names": ["web.example.test"]}
    data["services"][2]["dns"] = {"names": ["lan.example.test"]}
    data["dns"] = {"servers": [{"address": "192.0.2.53", "zone": "example.test",
                                "tsig": {"name": "k", "secret": SECRET}}]}
    return data


def test_names_follow_what_the_parts_announce() -> None:
    cfg = parse_text(yaml.safe_dump(dns_config()))
    bgp, l2, dns = FakeBgp(cfg), FakeL2(cfg), FakeDns(cfg)
    rec = Reconciler(cfg, Parts(FakeAddresses(), FakeForwarder(), bgp, l2, dns),
                     healthy(cfg), FakeElection(cfg), link_up=lambda _n: True)

    async def scenario() -> None:
        await rec.reconcile_once()
        assert dns.serving == {"web.example.test": ip_address("203.0.113.10"),
                               "lan.example.test": ip_address("192.0.2.100")}
        await rec.shutdown(keep=True)  # the drain wait and cleanup: test_reconcile.py
        assert dns.serving == {}

    asyncio.run(scenario())


def test_a_decided_but_unsent_route_publishes_no_name() -> None:
    cfg = parse_text(yaml.safe_dump(dns_config()))

    class SilentBgp(FakeBgp):
        def announced(self):  # type: ignore[no-untyped-def]
            return frozenset()  # e.g. the session is not established yet

    dns = FakeDns(cfg)
    rec = Reconciler(cfg, Parts(FakeAddresses(), FakeForwarder(), SilentBgp(cfg), FakeL2(cfg),
                                dns), healthy(cfg), FakeElection(cfg), link_up=lambda _n: True)
    asyncio.run(rec.reconcile_once())
    assert "web.example.test" not in dns.serving
    assert "lan.example.test" in dns.serving
