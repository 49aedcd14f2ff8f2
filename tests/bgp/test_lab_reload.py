"""A reload that changes one of two peers: one ExaBGP per peer, so the other
session (its uptime at the router, its routes, its ExaBGP) is not touched, and
with graceful restart the changed peer keeps every VIP while its ExaBGP
restarts with the new settings. On ExaBGP 4.2.25 and 5.0.x."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from ipaddress import ip_network

import pytest

from speaker.model import BgpAnnouncement
from tests.bgp.conftest import SpeakerThread, appliance_config
from tests.bgp.routers import Bird, Neighbor, Router, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.bgp_refresh]

VIPS = [BgpAnnouncement(ip_network(f"203.0.113.{i}/32")) for i in range(1, 21)]
EXPECTED = {str(a.prefix) for a in VIPS}


def pid_of(spk: SpeakerThread, instance: str) -> object:
    """PID of one instance's ExaBGP."""
    processes = spk.sync(spk.speaker.status)["processes"]
    assert isinstance(processes, dict)
    return processes[instance]["pid"]


def hold_time(bird: Bird) -> int:
    """Negotiated hold time of BIRD's first session."""
    match = re.search(r"Hold timer:\s+\S+/(\d+)", bird.birdc("show", "protocols", "all", "n0"))
    return int(match.group(1)) if match else -1


def test_reload_changing_one_peer_leaves_the_other_alone(
        exabgp: str | None, routers: Callable[..., Router],
        speakers: Callable[..., SpeakerThread]) -> None:
    r1 = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    r2 = routers("bird", "r2", [Neighbor("192.0.2.10", 65010)])
    assert isinstance(r1, Bird)
    assert isinstance(r2, Bird)
    peers = [{"name": "r1", "address": "192.0.2.1", "asn": 65001,
              "families": ["ipv4-unicast"]},
             {"name": "r2", "address": "192.0.2.2", "asn": 65001,
              "families": ["ipv4-unicast"]}]
    config = appliance_config("a1", peers, graceful_restart=True, exabgp=exabgp)
    spk = speakers("a1", config)
    spk.call(lambda: spk.speaker.set(VIPS))
    for router in (r1, r2):
        wait_for(lambda r=router: set(r.routes()) == EXPECTED, 30, what="VIPs at both routers")
    r1_since, r2_since = r1.sessions_since(), r2.sessions_since()
    assert r1_since
    assert r2_since
    r1_pid, r2_pid = pid_of(spk, "peer-r1"), pid_of(spk, "peer-r2")
    assert isinstance(r1_pid, int)
    assert r1_pid != r2_pid, "one ExaBGP per peer"
    assert hold_time(r2) == 9

    assert config.bgp is not None
    changed = config.bgp.peers[1].model_copy(update={"hold_time": 6.0})
    new = config.model_copy(update={"bgp": config.bgp.model_copy(
        update={"peers": [config.bgp.peers[0], changed]})})
    spk.sync(lambda: spk.speaker.reconfigure(new))

    counts = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts.append(r2.count())
        since = r2.sessions_since()
        if since and not r2.same_sessions(r2_since) and hold_time(r2) == 6:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("r2's session did not re-form with the new hold time")
    for _ in range(20):  # the replay and End-of-RIB follow the session
        counts.append(r2.count())
        time.sleep(0.05)
    assert min(counts) == len(VIPS), f"a VIP disappeared at r2 during its restart: {counts}"
    assert set(r2.routes()) == EXPECTED
    assert pid_of(spk, "peer-r2") != r2_pid

    assert r1.same_sessions(r1_since), "r1's session must not be touched"
    assert set(r1.routes()) == EXPECTED
    assert pid_of(spk, "peer-r1") == r1_pid
    sessions = spk.sync(spk.speaker.sessions)
    assert sessions["r1"].state == "up"
    assert sessions["r1"].announced == len(VIPS)
    wait_for(lambda: spk.sync(spk.speaker.sessions)["r2"].announced == len(VIPS), 10,
             what="r2 counted as announced again")
