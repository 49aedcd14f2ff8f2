"""L2 failover through `speaker run`: appliances on a bridge, a client pinging the VIP.

What a user checks: who answers ARP/NDP for the VIP, where the client's
neighbour entry points, and how long the client's pings go unanswered.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l2lab import SPEAKER, Group, Pinger, Segment, Vip

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

VIP = "192.0.2.100"
FRONT = [Vip("web", VIP, "front")]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Segment]:
    with Lab("esl") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2"])
    assert not leftover_namespaces("esl")


def start_pair(seg: Segment, p1: int = 150, p2: int = 100, preempt: bool = True,
               vips: list[Vip] | None = None) -> None:
    """Start the preferred appliance first and wait for it to lead, then the other (with
    preemption off, whoever is master first stays master)."""
    order = (("a1", p1), ("a2", p2)) if p1 > p2 else (("a2", p2), ("a1", p1))
    for name, prio in order:
        app = seg.configure(name, [Group("front", 51, prio, preempt)], vips or FRONT)
        app.start()
        if name == order[0][0]:
            app.wait_event("leader_gained", group="front")
            app.wait_event("vip_owned", vip=(vips or FRONT)[0].address)
    seg.appliances[order[1][0]].wait_event("ready")


def test_only_the_leader_answers_and_a_crash_moves_the_neighbour(pair: Segment) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair)
    pair.prime(VIP)
    assert pair.neigh_mac(VIP) == a1.mac
    assert pair.who_answers(VIP) == {a1.mac}  # a2 has the VIP on lo too, but stays silent
    status = a1.status()
    assert status["election"]["front"]["leader"] is True
    assert status["components"]["L2Responder"]["owned"] == [VIP]
    assert status["sysctls"]["mismatches"] == []

    pinger = Pinger(pair, VIP)
    time.sleep(0.3)
    a2.mark()
    a1.kill()  # kill -9: a process crash; a1's kernel still answers pings sent to its MAC
    a2.wait_event("leader_gained", group="front")
    moved = pair.wait_neigh(VIP, a2.mac, timeout=3.0)  # GARP, not an ARP timeout
    time.sleep(0.3)
    gap = Pinger.longest_gap(pinger.stop())
    print(f"crash: neighbour moved after {moved:.3f}s, longest ping gap {gap:.3f}s")
    assert moved < 3.0
    assert gap < 0.5, f"a crash should not interrupt the client (gap {gap:.3f}s)"
    assert pair.who_answers(VIP) == {a2.mac}


def test_appliance_death_fails_over_within_a_second(pair: Segment) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair)
    pair.prime(VIP)
    pinger = Pinger(pair, VIP)
    time.sleep(0.3)
    a2.mark()
    pair.death(a1)
    a2.wait_event("leader_gained", group="front")
    pair.wait_neigh(VIP, a2.mac, timeout=3.0)
    time.sleep(0.3)
    gap = Pinger.longest_gap(pinger.stop())
    print(f"death failover gap {gap:.3f}s")
    assert 0.05 < gap < 1.0, gap  # safety net; bench/failover_l2.py measures the figure
    failover = float(a2.wait_event("leader_gained", group="front")["failover_s"])
    assert 0.1 < failover < 1.0  # fast preset: master-down interval ~0.18 s


def test_planned_handover_by_drain_keeps_the_gap_small(pair: Segment) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair)
    pair.prime(VIP)
    pinger = Pinger(pair, VIP)
    time.sleep(0.3)
    a2.mark()
    a1.ns.run(SPEAKER, "drain", "-s", str(a1.sock))
    a2.wait_event("leader_gained", group="front")
    pair.wait_neigh(VIP, a2.mac, timeout=3.0)
    time.sleep(0.3)
    gap = Pinger.longest_gap(pinger.stop())
    print(f"planned handover gap {gap:.3f}s")
    assert gap < 0.5, gap
    assert pair.who_answers(VIP) == {a2.mac}


@pytest.mark.parametrize("preempt", [True, False])
def test_preemption_when_the_preferred_appliance_returns(pair: Segment, preempt: bool) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair, preempt=preempt)
    pair.prime(VIP)
    a2.mark()
    a1.kill(signal.SIGTERM)  # planned stop: priority 0, a2 takes over at once
    a2.wait_event("leader_gained", group="front")
    pair.wait_neigh(VIP, a2.mac)
    a1.start()
    if preempt:
        a1.wait_event("leader_gained", group="front")
        pair.wait_neigh(VIP, a1.mac)
        assert pair.who_answers(VIP) == {a1.mac}
    else:
        time.sleep(1.5)  # > 3 master-down intervals
        assert not a1.leader("front")
        assert pair.who_answers(VIP) == {a2.mac}


def test_link_down_on_the_leader_and_back(pair: Segment) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair)
    pair.prime(VIP)
    a1.mark()
    a2.mark()
    pair.lab.port_down(pair.switch, a1.port)
    a2.wait_event("leader_gained", group="front")
    a1.wait_event("leader_lost", group="front")  # carrier gone: a1 gives up too
    pair.wait_neigh(VIP, a2.mac)
    pair.lab.port_up(pair.switch, a1.port)
    a1.wait_event("vrrp_link_up", group="front")
    deadline = time.monotonic() + 5
    while not a1.leader("front") and time.monotonic() < deadline:
        time.sleep(0.05)
    pair.wait_neigh(VIP, a1.mac)
    assert pair.who_answers(VIP) == {a1.mac}


def test_ipv6_vip_via_ndp(pair: Segment) -> None:
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    vip6 = "2001:db8::100"
    start_pair(pair, vips=[Vip("web6", vip6, "front")])
    pair.prime(vip6)
    assert pair.neigh_mac(vip6) == a1.mac
    assert pair.who_answers(vip6) == {a1.mac}
    assert a1.status()["components"]["VrrpElection"]["groups"]["front"]["family"] == "ipv6"
    pinger = Pinger(pair, vip6)
    time.sleep(0.3)
    a2.mark()
    pair.death(a1)
    a2.wait_event("leader_gained", group="front")
    pair.wait_neigh(vip6, a2.mac, timeout=3.0)  # unsolicited NA with override
    gap = Pinger.longest_gap(pinger.stop())
    print(f"ipv6 death failover gap {gap:.3f}s")
    assert gap < 1.0
    assert pair.who_answers(vip6) == {a2.mac}


def test_forced_duplicate_owner_is_detected_and_resolved(pair: Segment) -> None:
    """Split brain: adverts go to a unicast peer that does not exist, so both appliances
    become master and answer; each sees the other's MAC. A reload back to multicast lets
    VRRP's rule settle it: the lower priority stops answering."""
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    for name, prio in (("a1", 150), ("a2", 100)):
        pair.configure(name, [Group("front", 51, prio)], FRONT,
                       unicast_peers=["192.0.2.250"]).start()
    for app in (a1, a2):  # two interpreters start per appliance (supervisor, timing child)
        app.wait_event("vip_owned", vip=VIP, timeout=20)
    assert pair.who_answers(VIP) == {a1.mac, a2.mac}
    e1 = a1.wait_event("vip_conflict", timeout=15, vip=VIP)
    assert (e1["our_mac"], e1["other_mac"]) == (a1.mac, a2.mac)
    a2.wait_event("vip_conflict", timeout=15, vip=VIP)
    conflicts = a1.status()["components"]["L2Responder"]["conflicts"]
    assert [c["other_mac"] for c in conflicts] == [a2.mac]
    metrics = a1.ns.run("curl", "-s", "http://127.0.0.1:9469/metrics").stdout
    assert f'speaker_vip_conflicts_total{{vip="{VIP}"}} 1.0' in metrics
    a2.mark()
    for name, prio in (("a1", 150), ("a2", 100)):
        pair.configure(name, [Group("front", 51, prio)], FRONT)
        pair.appliances[name].ns.run(SPEAKER, "reload", "-s", str(pair.appliances[name].sock))
    a2.wait_event("leader_lost", group="front")
    a2.wait_event("vip_released", vip=VIP)
    assert pair.who_answers(VIP) == {a1.mac}


def test_self_health_penalty_hands_over_without_a_gap(pair: Segment) -> None:
    """The leader's uplink loses carrier: self-checks lower its priority by 50, the
    backup (priority 120) preempts; the old leader answers until the new one speaks."""
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    a1.ns.run("ip", "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
    a1.ns.run("ip", "link", "set", "eth1", "up")
    a1.ns.run("ip", "link", "set", "eth1p", "up")
    pair.configure("a1", [Group("front", 51, 150)], FRONT, uplink="eth1").start()
    a1.wait_event("vip_owned", vip=VIP)
    pair.configure("a2", [Group("front", 51, 120)], FRONT).start()
    a2.wait_event("ready")
    pair.prime(VIP)
    pinger = Pinger(pair, VIP)
    time.sleep(0.3)
    a2.mark()
    a1.mark()
    a1.ns.run("ip", "link", "set", "eth1p", "down")  # eth1: NO-CARRIER
    a1.wait_event("election_penalty", penalty="50")
    a2.wait_event("leader_gained", group="front")
    pair.wait_neigh(VIP, a2.mac)
    time.sleep(0.3)
    gap = Pinger.longest_gap(pinger.stop())
    print(f"self-health handover gap {gap:.3f}s")
    assert gap < 0.2, gap
    assert a1.status()["election"]["front"]["priority"] == 100
    assert pair.who_answers(VIP) == {a2.mac}
