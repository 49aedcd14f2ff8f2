"""The reconciler with fakes behind every seam: desired state, plan order, apply."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.ipvs.model import Dest, DestKey, IpvsTable, Service, ServiceKey
from speaker.config import AppConfig, parse_text
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.model import Reason
from speaker.reconcile.apply import Parts, apply
from speaker.reconcile.desired import GRACEFUL_SHUTDOWN, compute_desired
from speaker.reconcile.inputs import Drains
from speaker.reconcile.loop import Reconciler
from speaker.reconcile.plan import Observed, Phase, plan

CONFIG: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "election": {"engine": "single", "groups": [{"name": "default"}, {"name": "g2"}]},
    "bgp": {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}],
            "defaults": {"communities": ["65010:1"], "med": 10}},
    "services": [
        {"name": "web", "vip": "203.0.113.10", "ports": [80, 443],
         "backends": [{"address": "198.51.100.11", "port": 8080},
                      {"address": "198.51.100.12", "port": 8080, "weight": 3},
                      {"address": "198.51.100.13", "port": 8080}],
         "quorum": {"min_healthy": 2}, "drain_time": "10s"},
        {"name": "ab", "vip": "203.0.113.11", "ports": [53], "protocol": "udp", "group": "g2",
         "bgp": {"mode": "active-backup"},
         "backends": [{"address": "198.51.100.21"}], "health": {"type": "none"}},
        {"name": "lan", "vip": "192.0.2.100", "ports": [80], "announce": "l2",
         "backends": [{"address": "192.0.2.31"}, {"address": "192.0.2.32"}],
         "quorum": {"min_healthy": 1, "below": "fail-open"}},
    ],
}
LABELS = ["198.51.100.11:8080", "198.51.100.12:8080", "198.51.100.13:8080"]


def config(**changes: Any) -> AppConfig:
    data = yaml.safe_load(yaml.safe_dump(CONFIG))
    data.update(changes)
    return parse_text(yaml.safe_dump(data))


def healthy(cfg: AppConfig, down: tuple[str, ...] = (), since: float = 0.0) -> FakeHealth:
    h = FakeHealth(cfg)
    for svc in cfg.services:
        for b in svc.backends:
            label = svc.backend_label(b)
            h.set(svc.name, label, label not in down, since)
    return h


def test_all_healthy_announces_everything() -> None:
    cfg = config()
    d = compute_desired(cfg, healthy(cfg).snapshot(), FakeElection(cfg).leadership(),
                        Drains(), 100.0)
    by = {x.service: x for x in d.decisions}
    assert by["web"].bgp is Reason.ANNOUNCED
    assert by["ab"].bgp is Reason.ANNOUNCED
    assert by["lan"].l2 is Reason.ANNOUNCED
    assert by["lan"].bgp is Reason.NOT_ANNOUNCED_HERE
    assert {a.prefix for a in d.bgp} == {ip_network("203.0.113.10/32"),
                                         ip_network("203.0.113.11/32")}
    web = next(a for a in d.bgp if a.prefix == ip_network("203.0.113.10/32"))
    assert web.communities == ("65010:1",)
    assert web.med == 10
    assert d.addresses == {ip_address("203.0.113.10"), ip_address("203.0.113.11"),
                           ip_address("192.0.2.100")}
    # two ports -> two IPVS services, each with three dests and their weights
    keys = {k for k in d.ipvs.services if k.address == ip_address("203.0.113.10")}
    assert keys == {ServiceKey.tcp("203.0.113.10", 80), ServiceKey.tcp("203.0.113.10", 443)}
    weights = sorted(dst.weight for dst in d.ipvs.dests.values()
                     if dst.key.service == ServiceKey.tcp("203.0.113.10", 443))
    assert weights == [1, 1, 3]


def test_backend_down_drains_with_weight_zero_then_is_removed() -> None:
    cfg = config()
    health = healthy(cfg, down=(LABELS[0],), since=100.0).snapshot()
    lead = FakeElection(cfg).leadership()
    during = compute_desired(cfg, health, lead, Drains(), 105.0)
    key = DestKey(ServiceKey.tcp("203.0.113.10", 80), ip_address("198.51.100.11"), 8080)
    assert during.ipvs.dests[key].weight == 0
    web = next(x for x in during.decisions if x.service == "web")
    assert web.backends[LABELS[0]] is Reason.BACKEND_DRAINING
    after = compute_desired(cfg, health, lead, Drains(), 111.0)
    assert key not in after.ipvs.dests
    assert next(x for x in after.decisions if x.service == "web").backends[LABELS[0]] \
        is Reason.BACKEND_REMOVED


def test_below_quorum_withdraws_and_fail_open_keeps_announcing() -> None:
    cfg = config()
    health = healthy(cfg, down=(LABELS[0], LABELS[1], "192.0.2.31:80", "192.0.2.32:80"))
    d = compute_desired(cfg, health.snapshot(), FakeElection(cfg).leadership(), Drains(), 1.0)
    by = {x.service: x for x in d.decisions}
    assert by["web"].bgp is Reason.BELOW_QUORUM
    assert ip_network("203.0.113.10/32") not in {a.prefix for a in d.bgp}
    assert by["lan"].l2 is Reason.FAIL_OPEN
    assert by["lan"].fail_open
    lan_weights = [dst.weight for dst in d.ipvs.dests.values()
                   if dst.key.service.address == ip_address("192.0.2.100")]
    assert lan_weights == [1, 1]  # fail-open: every backend keeps its weight


def test_no_healthy_backend_has_its_own_reason() -> None:
    cfg = config()
    health = healthy(cfg, down=tuple(LABELS))
    d = compute_desired(cfg, health.snapshot(), FakeElection(cfg).leadership(), Drains(), 1.0)
    assert next(x for x in d.decisions if x.service == "web").bgp is Reason.NO_HEALTHY_BACKENDS


def test_active_backup_non_leader_announces_a_worse_route() -> None:
    cfg = config()
    election = FakeElection(cfg)
    election.leaders["g2"] = False
    d = compute_desired(cfg, healthy(cfg).snapshot(), election.leadership(), Drains(), 1.0)
    ab = next(a for a in d.bgp if a.prefix == ip_network("203.0.113.11/32"))
    assert ab.med == 10 + cfg.bgp.active_backup.med_penalty  # type: ignore[union-attr]
    assert ab.as_path_prepend == cfg.bgp.active_backup.as_path_prepend  # type: ignore[union-attr]
    assert next(x for x in d.decisions if x.service == "ab").bgp is Reason.BACKUP_ROUTE


def test_l2_is_owned_only_by_the_leader() -> None:
    cfg = config()
    election = FakeElection(cfg, leader=False)
    d = compute_desired(cfg, healthy(cfg).snapshot(), election.leadership(), Drains(), 1.0)
    assert not d.l2
    assert next(x for x in d.decisions if x.service == "lan").l2 is Reason.NOT_LEADER


def test_planned_drain_announces_graceful_shutdown_then_withdraws() -> None:
    cfg = config()
    lead = FakeElection(cfg).leadership()
    drains = Drains().with_service("web", 50.0)
    early = compute_desired(cfg, healthy(cfg).snapshot(), lead, drains, 51.0)
    web = next(a for a in early.bgp if a.prefix == ip_network("203.0.113.10/32"))
    assert GRACEFUL_SHUTDOWN in web.communities
    late = compute_desired(cfg, healthy(cfg).snapshot(), lead, drains, 60.0)
    assert ip_network("203.0.113.10/32") not in {a.prefix for a in late.bgp}
    assert next(x for x in late.decisions if x.service == "web").bgp is Reason.DRAINED


def test_plan_gains_bottom_up_and_loses_top_down() -> None:
    cfg = config()
    d = compute_desired(cfg, healthy(cfg).snapshot(), FakeElection(cfg).leadership(), Drains(),
                        1.0)
    gain = plan(d, Observed())
    phases = [op.phase for op in gain]
    assert phases == sorted(phases)
    assert phases[0] is Phase.IPVS
    assert Phase.ANNOUNCE in phases
    assert phases.index(Phase.ADD_ADDRESS) < phases.index(Phase.ANNOUNCE) < phases.index(
        Phase.OWN)
    empty = compute_desired(config(services=[]), {}, {}, Drains(), 1.0)
    full = Observed(d.addresses, d.bgp, d.l2, d.ipvs)
    lose = [op.phase for op in plan(empty, full)]
    assert lose[0] is Phase.WITHDRAW
    assert lose.index(Phase.RELEASE) < lose.index(Phase.IPVS) < lose.index(Phase.DEL_ADDRESS)


def test_attribute_change_is_reannounced_without_withdraw() -> None:
    cfg = config()
    lead = FakeElection(cfg).leadership()
    before = compute_desired(cfg, healthy(cfg).snapshot(), lead, Drains(), 1.0)
    data = yaml.safe_load(yaml.safe_dump(CONFIG))
    data["bgp"]["defaults"]["med"] = 20
    cfg2 = parse_text(yaml.safe_dump(data))
    after = compute_desired(cfg2, healthy(cfg2).snapshot(), lead, Drains(), 1.0)
    ops = plan(after, Observed(before.addresses, before.bgp, before.l2, before.ipvs))
    assert {op.action for op in ops} == {"announce"}


def test_foreign_ipvs_service_is_left_alone() -> None:
    foreign_key = ServiceKey.tcp("198.51.100.200", 80)
    foreign = IpvsTable.of([Service(foreign_key)],
                           [Dest(DestKey(foreign_key, ip_address("198.51.100.201"), 80))])
    forwarder = FakeForwarder(foreign)
    cfg = config()
    d = compute_desired(cfg, healthy(cfg).snapshot(), FakeElection(cfg).leadership(), Drains(),
                        1.0)
    ops = plan(d, Observed(ipvs=forwarder.observe()), forwarder.owned)
    asyncio.run(apply(ops, Observed(ipvs=forwarder.observe()),
                      Parts(FakeAddresses(), forwarder)))
    assert forwarder.table.services[foreign_key] == Service(foreign_key)
    assert len(forwarder.table.dests_of(foreign_key)) == 1


@settings(max_examples=60, deadline=None)
@given(down=st.sets(st.sampled_from([*LABELS, "192.0.2.31:80", "192.0.2.32:80"])),
       leader=st.booleans(), now=st.floats(0, 100), drained=st.booleans())
def test_apply_then_plan_again_is_empty(down: set[str], leader: bool, now: float,
                                        drained: bool) -> None:
    """Property: after applying a plan, planning again yields no operation."""
    cfg = config()
    parts = Parts(FakeAddresses(), FakeForwarder(), FakeBgp(cfg), FakeL2(cfg))
    drains = Drains().with_service("web", 0.0) if drained else Drains()
    d = compute_desired(cfg, healthy(cfg, tuple(down)).snapshot(),
                        FakeElection(cfg, leader).leadership(), drains, now)

    def observe() -> Observed:
        assert parts.bgp is not None
        assert parts.l2 is not None
        assert parts.forwarder is not None
        return Observed(parts.addresses.list(), parts.bgp.announced(), parts.l2.owned(),
                        parts.forwarder.observe())

    result = asyncio.run(apply(plan(d, observe()), observe(), parts))
    assert result.ok
    assert plan(d, observe()) == ()


def test_failed_forwarder_blocks_announcement_and_is_retried() -> None:
    cfg = config()
    forwarder = FakeForwarder()
    bgp = FakeBgp(cfg)
    calls = {"n": 0}
    real_apply = forwarder.apply

    def flaky(ops: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("netlink busy")
        real_apply(ops)

    forwarder.apply = flaky  # type: ignore[method-assign]
    rec = Reconciler(cfg, Parts(FakeAddresses(), forwarder, bgp, FakeL2(cfg)), healthy(cfg),
                     FakeElection(cfg), link_up=lambda _name: True)
    first = asyncio.run(rec.reconcile_once())
    assert not first.ok
    assert not bgp.current  # nothing announced over an unprogrammed forwarder
    second = asyncio.run(rec.reconcile_once())
    assert second.ok
    assert len(bgp.current) == 2


def test_uplink_down_withdraws_bgp_and_lowers_priority() -> None:
    cfg = config(node={"name": "lb1", "router_id": "192.0.2.10",
                       "interfaces": [{"name": "eth0", "role": "client"}],
                       "self_checks": {"uplinks": ["eth0"], "priority_penalty": 60}})
    bgp = FakeBgp(cfg)
    election = FakeElection(cfg)
    link = {"up": True}
    rec = Reconciler(cfg, Parts(FakeAddresses(), FakeForwarder(), bgp, FakeL2(cfg)),
                     healthy(cfg), election, link_up=lambda _n: link["up"])

    async def scenario() -> None:
        await rec.reconcile_once()
        assert len(bgp.current) == 2
        link["up"] = False
        await rec.reconcile_once()  # notices the uplink
        await rec.reconcile_once()  # acts on it
        assert not bgp.current
        assert election.penalty == 60
        doc = {d.service: d.bgp for d in rec.desired.decisions}  # type: ignore[union-attr]
        assert doc["web"] is Reason.APPLIANCE_UNHEALTHY

    asyncio.run(scenario())


def test_shutdown_withdraws_everything() -> None:
    cfg = config()
    bgp, l2 = FakeBgp(cfg), FakeL2(cfg)
    addresses, forwarder = FakeAddresses(), FakeForwarder()
    rec = Reconciler(cfg, Parts(addresses, forwarder, bgp, l2), healthy(cfg),
                     FakeElection(cfg), link_up=lambda _n: True)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        # withdrawn before the drain wait; addresses and IPVS removed only after it
        assert not bgp.current
        assert not l2.current
        assert addresses.present
        assert forwarder.table.services
        slept.append(seconds)

    async def scenario() -> None:
        await rec.reconcile_once()
        assert bgp.current
        assert l2.current
        await rec.shutdown(sleep=sleep)

    asyncio.run(scenario())
    assert slept == [max(s.drain_time for s in cfg.services)]
    assert not addresses.present
    assert not forwarder.table.services


@pytest.mark.parametrize("events", [1, 50])
def test_wakeups_are_coalesced(events: int) -> None:
    cfg = config()
    rec = Reconciler(cfg, Parts(FakeAddresses()), healthy(cfg), FakeElection(cfg),
                     resync_interval=3600, link_up=lambda _n: True)

    async def scenario() -> int:
        task = asyncio.create_task(rec.run())
        await asyncio.sleep(0.05)
        before = rec.passes
        for _ in range(events):
            rec.wake("test")
        async with asyncio.timeout(10):  # a loaded machine may take a while for the pass
            while rec.passes == before:  # noqa: ASYNC110 - the loop keeps only a count
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for a second pass, had the wake-ups not coalesced
        task.cancel()
        return rec.passes - before

    assert asyncio.run(scenario()) == 1


def test_event_passes_plan_against_known_and_resync_dumps() -> None:
    """Between resyncs a pass plans against forwarder.known() (no dump); the resync
    dumps and heals a change made behind our back; a failed pass dumps next time."""
    cfg = config()
    forwarder = FakeForwarder()
    health = healthy(cfg)
    now = {"t": 0.0}
    rec = Reconciler(cfg, Parts(FakeAddresses(), forwarder, FakeBgp(cfg), FakeL2(cfg)),
                     health, FakeElection(cfg), clock=lambda: now["t"], resync_interval=2.0,
                     link_up=lambda _n: True)

    async def scenario() -> None:
        assert (await rec.reconcile_once()).ok
        assert forwarder.dumps == 1
        programmed = forwarder.table
        # A health change woken by an event: planned against known(), no dump.
        now["t"] = 0.5
        health.set("web", LABELS[0], False, 0.5)
        before = len(forwarder.applied)
        assert (await rec.reconcile_once()).ok
        assert forwarder.dumps == 1
        assert len(forwarder.applied) > before  # the weight change was applied
        assert forwarder.table != programmed
        # Someone deletes a service behind our back: an event pass does not see it...
        victim = next(iter(forwarder.table.services))
        forwarder.table = IpvsTable.of(
            [s for k, s in forwarder.table.services.items() if k != victim],
            [d for d in forwarder.table.dests.values() if d.key.service != victim])
        now["t"] = 1.0
        await rec.reconcile_once()
        assert victim not in forwarder.table.services
        assert forwarder.dumps == 1
        # ...the resync does, and heals it.
        now["t"] = 2.5
        assert (await rec.reconcile_once()).ok
        assert forwarder.dumps == 2
        assert victim in forwarder.table.services

    asyncio.run(scenario())


def test_failed_pass_dumps_on_the_next_one() -> None:
    cfg = config()
    forwarder = FakeForwarder()
    real_apply = forwarder.apply
    calls = {"n": 0}

    def flaky(ops: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("netlink busy")
        real_apply(ops)

    forwarder.apply = flaky  # type: ignore[method-assign]
    health = healthy(cfg)
    rec = Reconciler(cfg, Parts(FakeAddresses(), forwarder, FakeBgp(cfg), FakeL2(cfg)),
                     health, FakeElection(cfg), clock=lambda: 0.0, link_up=lambda _n: True)

    async def scenario() -> None:
        assert (await rec.reconcile_once()).ok
        health.set("web", LABELS[0], False, 0.0)
        assert not (await rec.reconcile_once()).ok
        assert forwarder.dumps == 1
        assert (await rec.reconcile_once()).ok
        assert forwarder.dumps == 2

    asyncio.run(scenario())
