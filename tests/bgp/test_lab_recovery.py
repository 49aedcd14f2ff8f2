"""Failures and restarts: ExaBGP killed, peer restarted, bridge killed, wrong
TCP-MD5 password, planned stop. The router (BIRD) is the judge."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

import pytest

from speaker.metrics import REGISTRY
from speaker.model import BgpAnnouncement
from tests.bgp.conftest import SpeakerThread, appliance_config
from tests.bgp.routers import Bird, Neighbor, Router, wait_for

pytestmark = pytest.mark.lab

VIPS = [BgpAnnouncement(ip_network(f"203.0.113.{i}/32"), communities=("65010:1",))
        for i in range(1, 21)]
EXPECTED = {str(a.prefix) for a in VIPS}


def v4_peer(**extra: object) -> dict[str, object]:
    """The IPv4 session to router r1."""
    return {"name": "r1", "address": "192.0.2.1", "asn": 65001, "families": ["ipv4-unicast"],
            **extra}


def exabgp_pid(spk: SpeakerThread) -> int:
    """PID of the ExaBGP child the speaker runs."""
    pid = spk.sync(spk.speaker.status)["exabgp"]["pid"]  # type: ignore[index]
    assert isinstance(pid, int)
    return pid


def children(pid: int) -> list[int]:
    """Direct children of a process (the bridge is ExaBGP's child)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def metric(name: str, **labels: str) -> float:
    """Current value of a sample on the appliance registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def up(spk: SpeakerThread, peer: str = "r1") -> bool:
    """Whether the speaker reports the session up."""
    return spk.sync(spk.speaker.sessions)[peer].state == "up"


def test_exabgp_kill9_restarts_and_reannounces_every_vip(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [v4_peer()], graceful_restart=False))
    spk.call(lambda: spk.speaker.set(VIPS))
    wait_for(lambda: set(bird.routes()) == EXPECTED, 30, what="20 VIPs at BIRD")
    assert metric("speaker_bgp_session_up", peer="r1") == 1
    assert metric("speaker_bgp_announced_prefixes", peer="r1") == len(VIPS)
    restarts = metric("speaker_exabgp_restarts_total")
    announced = metric("speaker_bgp_updates_total", peer="r1", kind="announce")
    first = exabgp_pid(spk)

    os.kill(first, signal.SIGKILL)
    # No graceful restart: BIRD flushes the routes when the TCP session dies.
    wait_for(lambda: not bird.routes(), 15, what="routes flushed after the kill")
    wait_for(lambda: up(spk), 30, what="session up again")
    wait_for(lambda: set(bird.routes()) == EXPECTED, 5, what="every VIP back")
    status = spk.sync(spk.speaker.status)
    assert status["exabgp"]["restarts"] == 1  # type: ignore[index]
    assert exabgp_pid(spk) != first
    assert spk.sync(spk.speaker.announced) == frozenset(VIPS)
    assert "exabgp_exited" in spk.wakes
    assert metric("speaker_exabgp_restarts_total") == restarts + 1
    assert metric("speaker_bgp_updates_total", peer="r1", kind="announce") >= announced + 20
    assert metric("speaker_bgp_session_up", peer="r1") == 1


def test_graceful_restart_keeps_routes_at_peer_through_exabgp_restart(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    """manual-eor: the restarted ExaBGP sends End-of-RIB only after the replay,
    so the peer never drops a VIP."""
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    assert isinstance(bird, Bird)
    spk = speakers("a1", appliance_config("a1", [v4_peer()], graceful_restart=True))
    spk.call(lambda: spk.speaker.set(VIPS))
    wait_for(lambda: bird.count() == len(VIPS), 30, what="20 VIPs at BIRD")
    os.kill(exabgp_pid(spk), signal.SIGKILL)
    wait_for(lambda: not up(spk), 10, what="speaker notices the crash")
    counts = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts.append(bird.count())
        if up(spk) and "Established" in bird.birdc("show", "protocols"):
            break
        time.sleep(0.05)
    for _ in range(20):  # the replay and End-of-RIB follow the session
        counts.append(bird.count())
        time.sleep(0.05)
    assert min(counts) == len(VIPS), f"a VIP disappeared during the restart: {counts}"
    assert set(bird.routes()) == EXPECTED


def test_peer_restart_gets_every_vip_back(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    assert isinstance(bird, Bird)
    spk = speakers("a1", appliance_config("a1", [v4_peer()]))
    spk.call(lambda: spk.speaker.set(VIPS))
    wait_for(lambda: set(bird.routes()) == EXPECTED, 30, what="VIPs at BIRD")
    bird.stop()
    wait_for(lambda: not up(spk), 15, what="session down after the router stopped")
    bird.start()
    wait_for(lambda: set(bird.routes()) == EXPECTED, 30, what="VIPs back after peer restart")
    assert up(spk)


def test_bridge_death_is_recovered(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [v4_peer()]))
    spk.call(lambda: spk.speaker.set(VIPS[:10]))
    wait_for(lambda: len(bird.routes()) == 10, 30, what="10 VIPs at BIRD")
    exabgp = exabgp_pid(spk)
    bridges = children(exabgp)
    assert len(bridges) == 1
    os.kill(bridges[0], signal.SIGKILL)
    # ExaBGP respawns the bridge; the speaker resynchronises over the new connection.
    wait_for(lambda: children(exabgp) and children(exabgp) != bridges, 15,
             what="bridge respawned")
    spk.call(lambda: spk.speaker.set(VIPS[5:]))
    wait_for(lambda: set(bird.routes()) == {str(a.prefix) for a in VIPS[5:]}, 15,
             what="changes after the bridge death reach the router")
    assert exabgp_pid(spk) == exabgp, "ExaBGP itself must not have been restarted"
    assert up(spk)


def test_wrong_md5_password_shows_clearly_in_status(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010, "right-password")])
    spk = speakers("a1", appliance_config("a1", [v4_peer(password="wrong-password")]))
    spk.call(lambda: spk.speaker.set(VIPS[:1]))
    status = wait_for(
        lambda: (s := spk.sync(spk.speaker.status)["sessions"]["r1"])  # type: ignore[index]
        and s["reason"] == "tcp_md5_mismatch_suspected" and s, 30,
        what="status explains the MD5 mismatch")
    assert status["state"] != "up"
    assert "MD5" in status["detail"]
    assert bird.established() == 0
    assert not bird.routes()
    # honest state: ExaBGP holds the VIP, but nothing was sent to the router
    assert status["announced"] == 0
    assert status["pending"] == 1
    assert spk.sync(spk.speaker.announced) == frozenset()
    assert spk.sync(spk.speaker.accepted) == frozenset(VIPS[:1]), "no re-announce per resync"
    assert spk.sync(spk.speaker.status)["announced"] == {"r1": []}
    assert metric("speaker_bgp_announced_prefixes", peer="r1") == 0


def test_withdraw_all_before_stop_leaves_nothing_at_peer(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    """With graceful restart ExaBGP closes silently and the peer would keep the
    routes for the restart time: a planned stop withdraws first."""
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [v4_peer()], graceful_restart=True))
    spk.call(lambda: spk.speaker.set(VIPS))
    wait_for(lambda: set(bird.routes()) == EXPECTED, 30, what="VIPs at BIRD")
    spk.call(spk.speaker.withdraw_all)
    spk.stop()
    assert bird.routes() == {}
    time.sleep(1)
    assert bird.routes() == {}


def test_wrong_peer_asn_shows_the_notification_reason(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [v4_peer(asn=65099)]))
    # ExaBGP sees BIRD's AS 65001 in the OPEN and refuses it with NOTIFICATION 2/2.
    state = wait_for(lambda: (s := spk.sync(spk.speaker.sessions)["r1"]).reason in (
        "sent_bad_peer_as", "bad_peer_as") and s, 30, what="reason bad peer AS")
    assert state.state == "down"
    detail = spk.sync(spk.speaker.status)["sessions"]["r1"]["detail"]  # type: ignore[index]
    assert "65099" in detail, "the detail names the configured AS (on 4.2 and 5.0)"


def test_passive_peer_is_reached_by_the_router(
        routers: Callable[..., Router], speakers: Callable[..., SpeakerThread]) -> None:
    """ExaBGP listens on the appliance address when a peer is passive."""
    bird = routers("bird", "r1", [Neighbor("192.0.2.10", 65010)])
    spk = speakers("a1", appliance_config("a1", [v4_peer(passive=True)]))
    spk.call(lambda: spk.speaker.set(VIPS[:3]))
    wait_for(lambda: len(bird.routes()) == 3, 30, what="VIPs over a session BIRD opened")
    assert up(spk)
