"""A reconcile pass costs what changed: a flap touches only its service, a resync
still repairs drift, and the cached desired state equals compute_desired()."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.ipvs.model import IpvsTable
from dataplane.ipvs.plan import DelDest, EditDest, apply_to_table
from speaker.config import AppConfig, parse_text
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.model import Leadership
from speaker.reconcile import desired as desired_module
from speaker.reconcile.apply import Parts
from speaker.reconcile.desired import compute_desired
from speaker.reconcile.incremental import DesiredCache
from speaker.reconcile.inputs import ApplianceHealth, Drains
from speaker.reconcile.loop import Reconciler
from speaker.reconcile.overlay import LayeredDict

N = 50


def big_config(n: int = N) -> AppConfig:
    services = "\n".join(
        f"  - {{name: s{i}, vip: 198.18.0.{i + 1}, ports: [80], drain_time: 10s, "
        f"announce: {'l2' if i % 5 == 0 else 'bgp'}, "
        f"backends: [{{address: 198.51.100.1}}, {{address: 198.51.100.2}}]}}"
        for i in range(n))
    return parse_text(f"""
node: {{name: lb1, router_id: 192.0.2.10, interfaces: [{{name: eth0, role: both}}]}}
bgp:
  local_asn: 65010
  graceful_shutdown: true
  peers: [{{name: r1, address: 192.0.2.1, asn: 65000}}]
services:
{services}
""")


def all_up(cfg: AppConfig) -> FakeHealth:
    health = FakeHealth(cfg)
    for svc in cfg.services:
        for b in svc.backends:
            health.set(svc.name, svc.backend_label(b), True)
    return health


class Rig:
    """A reconciler over fakes with a settable clock."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.clock = [100.0]
        self.health = all_up(cfg)
        self.forwarder, self.bgp, self.l2 = FakeForwarder(), FakeBgp(cfg), FakeL2(cfg)
        self.addresses = FakeAddresses()
        self.rec = Reconciler(cfg, Parts(self.addresses, self.forwarder, self.bgp, self.l2),
                              self.health, FakeElection(cfg), link_up=lambda _n: True,
                              clock=lambda: self.clock[0], resync_interval=2.0)

    def run(self, seconds: float = 0.1) -> None:
        self.clock[0] += seconds
        result = asyncio.run(self.rec.reconcile_once())
        assert result.ok, result.errors

    def label(self, index: int, backend: int = 0) -> str:
        svc = self.cfg.services[index]
        return svc.backend_label(svc.backends[backend])


def count_service_parts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the services whose desired part is computed, call by call."""
    seen: list[str] = []
    real = desired_module.service_part

    def counting(config: AppConfig, svc: Any, *args: Any) -> Any:
        seen.append(svc.name)
        return real(config, svc, *args)

    monkeypatch.setattr("speaker.reconcile.incremental.service_part", counting)
    return seen


def test_a_flap_computes_plans_and_applies_only_its_service(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(big_config())
    rig.run()
    seen = count_service_parts(monkeypatch)
    applied, sets = len(rig.forwarder.applied), len(rig.bgp.history)
    rig.health.set("s7", rig.label(7), False, since=rig.clock[0])
    rig.run()
    assert seen == ["s7"]
    ops = rig.forwarder.applied[applied:]
    assert len(ops) == 1
    assert isinstance(ops[0], EditDest)
    assert ops[0].dest.weight == 0
    assert len(rig.bgp.history) == sets  # still at quorum: no route change
    assert rig.rec.full_plans == 1  # only the first pass planned everything
    # the whole service fails: its route alone is withdrawn
    seen.clear()
    rig.health.set("s7", rig.label(7, 1), False, since=rig.clock[0])
    rig.run()
    assert seen == ["s7"]
    gone = rig.bgp.history[-2] - rig.bgp.history[-1]
    assert [str(a.prefix) for a in gone] == ["198.18.0.8/32"]
    assert len(rig.bgp.current) == 39
    # and comes back
    rig.health.set("s7", rig.label(7), True, since=rig.clock[0])
    rig.health.set("s7", rig.label(7, 1), True, since=rig.clock[0])
    rig.run()
    assert len(rig.bgp.current) == 40
    assert rig.rec.full_plans == 1


def test_a_quiet_pass_computes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(big_config())
    rig.run()
    seen = count_service_parts(monkeypatch)
    rig.run()
    assert seen == []


def test_drain_time_running_out_recomputes_that_service_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(big_config())
    rig.run()
    rig.health.set("s3", rig.label(3), False, since=rig.clock[0])
    rig.run()
    seen = count_service_parts(monkeypatch)
    applied = len(rig.forwarder.applied)
    rig.run(0.5)
    assert seen == []  # drain_time (10 s) not over yet
    for _ in range(6):
        rig.run(1.9)  # each within the resync interval of the last
    assert seen == ["s3"]
    assert any(isinstance(op, DelDest) for op in rig.forwarder.applied[applied:])


def test_the_resync_repairs_drift_the_event_passes_do_not_see() -> None:
    rig = Rig(big_config())
    rig.run()
    want = rig.forwarder.table
    # someone deletes one of our dests and a route goes missing at the speaker
    victim = next(iter(want.dests))
    rig.forwarder.table = apply_to_table(want, [DelDest(victim)])
    rig.run(0.1)  # an event pass: plans against known(), the dest stays missing
    assert victim not in rig.forwarder.table.dests
    rig.run(2.0)  # the periodic resync dumps and plans everything
    assert victim in rig.forwarder.table.dests
    assert rig.forwarder.table == want
    assert rig.rec.full_plans == 2


def test_a_route_lost_by_the_speaker_is_noticed_at_once() -> None:
    rig = Rig(big_config())
    rig.run()
    lost = next(iter(rig.bgp.current))
    rig.bgp.current = rig.bgp.current - {lost}
    rig.run(0.1)
    assert lost in rig.bgp.current


def test_reload_recomputes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(big_config())
    rig.run()
    seen = count_service_parts(monkeypatch)
    bigger = big_config(N + 1)
    for b in bigger.services[N].backends:
        rig.health.set(f"s{N}", bigger.services[N].backend_label(b), True)
    rig.rec.reconfigure(bigger)
    rig.run()
    assert len(seen) == N + 1
    assert len(rig.l2.current) == 11  # s50 is an L2 service


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, N - 1), st.integers(0, 1), st.booleans(),
                          st.sampled_from(["health", "drain", "service_drain", "leader",
                                           "appliance", "time"])),
                min_size=1, max_size=12))
def test_cached_desired_state_equals_computing_it_afresh(
        steps: list[tuple[int, int, bool, str]]) -> None:
    cfg = big_config()
    health = all_up(cfg)
    cache = DesiredCache()
    drains, now, leader, appliance = Drains(), 100.0, True, ApplianceHealth()
    for index, backend, flag, what in steps:
        svc = cfg.services[index]
        label = svc.backend_label(svc.backends[backend])
        if what == "health":
            health.set(svc.name, label, flag, since=now)
        elif what == "drain":
            drains = drains.with_backend((svc.name, label), now if flag else None)
        elif what == "service_drain":
            drains = drains.with_service(svc.name, now if flag else None)
        elif what == "leader":
            leader = flag
        elif what == "appliance":
            appliance = ApplianceHealth(flag, () if flag else ("uplink_down:eth0",))
        else:
            now += 7.0 if flag else 2.0
        lead = {"default": Leadership("default", leader, 0.0)}
        snap = health.snapshot()
        got, _change = cache.compute(cfg, snap, lead, drains, now, appliance=appliance,
                                     shutting_down=False)
        fresh = compute_desired(cfg, snap, lead, drains, now, appliance=appliance)
        assert got.decisions == fresh.decisions
        assert got.bgp == fresh.bgp
        assert got.l2 == fresh.l2
        assert got.addresses == fresh.addresses
        assert dict(got.ipvs.services) == dict(fresh.ipvs.services)
        assert dict(got.ipvs.dests) == dict(fresh.ipvs.dests)


def test_layered_view_is_immutable_and_complete() -> None:
    layered: LayeredDict[int, str] = LayeredDict({i: str(i) for i in range(100)})
    layered.set(5, "five")
    layered.pop(6)
    layered.set(200, "new")
    view = layered.view()
    layered.set(7, "seven")
    layered.pop(200)
    assert view[5] == "five"
    assert 6 not in view
    assert view[7] == "7"
    assert view[200] == "new"
    assert len(view) == 100 == len(list(view))
    assert dict(layered.view()) == {**{i: str(i) for i in range(100) if i != 6},
                                    5: "five", 7: "seven"}
    for i in range(300):  # past the fold threshold: still the same content
        layered.set(i % 50, "x")
    assert dict(layered.view())[3] == "x"
    assert IpvsTable(services={}, dests=view).dests is view
