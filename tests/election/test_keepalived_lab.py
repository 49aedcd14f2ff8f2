"""VRRPv3 interop with Debian's keepalived, both ways: who wins, failover, preemption."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from l2lab import (
    Group,
    Segment,
    Vip,
    keepalived_conf,
    keepalived_states,
    start_keepalived,
    wait_keepalived,
)

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

# keepalived (SCHED_OTHER, unlike our timing child) interoperates at 100 ms here: at
# the fast preset's 50 ms a loaded CI machine would make *it* flap, not us
KA_INTERVAL = 0.1
VIP = "192.0.2.100"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Segment]:
    with Lab("esk") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2"])
    assert not leftover_namespaces("esk")


def test_ours_higher_priority_wins_keepalived_takes_over_and_gives_back(pair: Segment) -> None:
    ours, ka = pair.appliances["a1"], pair.appliances["a2"]
    pair.configure("a1", [Group("front", 51, 150, advert_interval=KA_INTERVAL)],
                   [Vip("web", VIP, "front")]).start()
    ours.wait_event("leader_gained", group="front")
    start_keepalived(ka, keepalived_conf("ka", 51, 100, [VIP], interval=KA_INTERVAL))
    wait_keepalived(ka, "BACKUP")
    time.sleep(1.0)  # > 3 advert intervals: keepalived must stay backup on our adverts
    assert keepalived_states(ka) == ["BACKUP"]
    pair.prime(VIP)
    assert pair.who_answers(VIP) == {ours.mac}

    pair.death(ours)  # keepalived takes over
    wait_keepalived(ka, "MASTER")
    pair.wait_neigh(VIP, ka.mac)

    pair.revive(ours)  # preemption: our higher priority takes the VIP back
    ours.wait_event("leader_gained", group="front")
    wait_keepalived(ka, "BACKUP", count=2)
    pair.wait_neigh(VIP, ours.mac)
    assert pair.who_answers(VIP) == {ours.mac}


def test_keepalived_higher_priority_wins_and_we_take_over_when_it_dies(pair: Segment) -> None:
    ka, ours = pair.appliances["a1"], pair.appliances["a2"]
    start_keepalived(ka, keepalived_conf("ka", 51, 200, [VIP], interval=KA_INTERVAL))
    wait_keepalived(ka, "MASTER")
    pair.configure("a2", [Group("front", 51, 100, advert_interval=KA_INTERVAL)],
                   [Vip("web", VIP, "front")]).start()
    ours.wait_event("ready")
    time.sleep(1.0)
    assert not ours.leader("front")
    status = ours.status()["components"]["VrrpElection"]["groups"]["front"]
    assert status["state"] == "backup"
    assert status["master"] == "192.0.2.11"
    pair.prime(VIP)
    assert pair.who_answers(VIP) == {ka.mac}

    ours.mark()
    pair.death(ka)
    ours.wait_event("leader_gained", group="front")
    pair.wait_neigh(VIP, ours.mac)
    assert pair.who_answers(VIP) == {ours.mac}


def test_mismatched_vip_lists_split_the_brain_and_we_say_so(pair: Segment) -> None:
    """keepalived discards adverts whose address list differs from its own, so it
    becomes master next to us: we log the mismatch and report the duplicate owner."""
    ours, ka = pair.appliances["a1"], pair.appliances["a2"]
    pair.configure("a1", [Group("front", 51, 150, advert_interval=KA_INTERVAL)],
                   [Vip("web", VIP, "front")]).start()
    ours.wait_event("leader_gained", group="front")
    start_keepalived(ka, keepalived_conf("ka", 51, 100, [VIP, "192.0.2.105"], interval=KA_INTERVAL))
    wait_keepalived(ka, "MASTER")
    assert "unexpected ip number count" in (ka.workdir / "keepalived.log").read_text()
    mismatch = ours.wait_event("vrrp_address_mismatch", group="front")
    assert mismatch["theirs"] == f"{VIP},192.0.2.105"
    conflict = ours.wait_event("vip_conflict", timeout=15, vip=VIP)
    assert conflict["other_mac"] == ka.mac


def test_ipv6_instances_interoperate(pair: Segment) -> None:
    """VRRPv3 over IPv6 (ff02::12, link-local sources) with keepalived, both ways."""
    vip6 = "2001:db8::100"
    ours, ka = pair.appliances["a1"], pair.appliances["a2"]
    pair.configure("a1", [Group("front", 52, 150, advert_interval=KA_INTERVAL)],
                   [Vip("web6", vip6, "front")]).start()
    ours.wait_event("leader_gained", group="front")
    start_keepalived(ka, keepalived_conf("ka", 52, 100, [vip6], interval=KA_INTERVAL))
    wait_keepalived(ka, "BACKUP")
    time.sleep(1.0)
    assert keepalived_states(ka) == ["BACKUP"]
    pair.prime(vip6)
    assert pair.who_answers(vip6) == {ours.mac}
    pair.death(ours)
    wait_keepalived(ka, "MASTER")
    pair.wait_neigh(vip6, ka.mac)
    pair.revive(ours)  # keepalived master, ours returns with the higher priority
    ours.wait_event("leader_gained", group="front")
    wait_keepalived(ka, "BACKUP", count=2)
    pair.wait_neigh(vip6, ours.mac)
