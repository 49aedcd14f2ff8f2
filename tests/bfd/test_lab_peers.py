"""The appliance's BFD against real peers: BIRD 2 and FRR bfdd, IPv4 and IPv6
single-hop, FRR multihop through a router, at 100 ms x 3 and (changed live, then
from a fresh start) 300 ms x 3; detection, TTL check and child restart.

Topology (prefix `ebf`): switch ebf-sw; ebf-rb (BIRD, 192.0.2.1, 2001:db8::1),
ebf-rf (FRR bfdd, 192.0.2.2, 2001:db8::2; routes to 198.51.100.0/24), ebf-a1
(appliance, 192.0.2.10, 2001:db8::10; BFD child), ebf-r2 (bfdd, 198.51.100.2,
one router away behind ebf-rf).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from speaker.config import AppConfig
from speaker.lab.netns import Lab, Namespace, leftover_namespaces, require_root
from tests.bfd.peers import BfdPeer, BirdBfd, FrrBfdd
from tests.bfd.runner_thread import RunnerThread

pytestmark = [pytest.mark.lab, pytest.mark.bfd]
PREFIX = "ebf"
A4, A6 = "192.0.2.10", "2001:db8::10"


def wait_for(check: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


def appliance(timers: dict[str, Any] | bool) -> AppConfig:
    peer = {"asn": 65000, "bfd": timers}
    return AppConfig.model_validate({
        "node": {"name": "a1", "router_id": A4, "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "peers": [
            {**peer, "name": "bird4", "address": "192.0.2.1", "local_address": A4},
            {**peer, "name": "bird6", "address": "2001:db8::1", "local_address": A6},
            {**peer, "name": "frr4", "address": "192.0.2.2"},
            {**peer, "name": "frr6", "address": "2001:db8::2", "local_address": A6},
            {**peer, "name": "frrmh", "address": "198.51.100.2", "multihop": 2,
             "local_address": A4},
        ]}})


FAST = {"min_tx": "100ms", "min_rx": "100ms", "multiplier": 3}
SLOW = {"min_tx": "300ms", "min_rx": "300ms", "multiplier": 3}


@dataclass
class Rig:
    lab: Lab
    bird: BirdBfd
    frr: FrrBfdd
    r2: FrrBfdd
    a1: Namespace
    rf: Namespace
    ports: dict[str, str]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if not require_root():
        pytest.skip("lab tests need root")
    work = tmp_path_factory.mktemp("bfd")
    with Lab(PREFIX) as lab:
        sw = lab.switch("sw")
        rb, rf, a1, r2 = lab.host("rb"), lab.host("rf"), lab.host("a1"), lab.host("r2")
        ports = {"rb": lab.connect(rb, sw, "eth0", ["192.0.2.1/24", "2001:db8::1/64"]),
                 "rf": lab.connect(rf, sw, "eth0", ["192.0.2.2/24", "2001:db8::2/64"]),
                 "a1": lab.connect(a1, sw, "eth0", [f"{A4}/24", f"{A6}/64"])}
        lab.wire(rf, r2, "eth1", "eth0", ["198.51.100.1/24"], ["198.51.100.2/24"])
        a1.run("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
        r2.run("ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.1")
        bird = BirdBfd(rb, work / "bird", [BfdPeer(A4, "192.0.2.1"),
                                          BfdPeer(A6, "2001:db8::1")])
        frr = FrrBfdd(rf, [BfdPeer(A4, "192.0.2.2"), BfdPeer(A6, "2001:db8::2")])
        far = FrrBfdd(r2, [BfdPeer(A4, "198.51.100.2", multihop=True)])
        try:
            yield Rig(lab, bird, frr, far, a1, rf, ports)
        finally:
            for daemon in (bird, frr, far):
                daemon.stop()
    assert not leftover_namespaces(PREFIX)


@pytest.fixture
def runner(rig: Rig) -> Iterator[RunnerThread]:
    thread = RunnerThread(appliance(FAST), f"{PREFIX}-a1")
    try:
        yield thread
    finally:
        thread.stop()


def all_up(runner: RunnerThread) -> bool:
    return all(s.state == "up" for s in runner.sessions().values())


def router_side(rig: Rig) -> dict[str, tuple[str, float, float]]:
    """session -> (state, tx ms, detect ms) as the routers report them."""
    out: dict[str, tuple[str, float, float]] = {}
    for addr, row in rig.bird.sessions().items():
        out[f"bird@{addr}"] = (row["state"], float(row["interval"]) * 1000,
                               float(row["timeout"]) * 1000)
    for name, daemon in (("frr", rig.frr), ("r2", rig.r2)):
        for addr, peer in daemon.peers().items():
            out[f"{name}@{addr}"] = (
                peer["status"], float(max(peer["transmit-interval"],
                                          peer["remote-receive-interval"])),
                float(peer["remote-detect-multiplier"] * max(
                    peer["receive-interval"], peer["remote-transmit-interval"])))
    return out


def routers_at(rig: Rig, want: tuple[str, float, float]) -> dict[str, Any] | None:
    sides = router_side(rig)
    return sides if len(sides) == 5 and all(v == want for v in sides.values()) else None


def details(runner: RunnerThread) -> dict[str, dict[str, Any]]:
    return {k: v["detail"] for k, v in runner.status()["sessions"].items()}


def test_sessions_up_with_bird_and_frr_at_100ms_then_300ms_live_then_fresh(
        rig: Rig, runner: RunnerThread) -> None:
    wait_for(lambda: all_up(runner), 20, "every BFD session up at 100 ms x 3")
    wait_for(lambda: all(v.get("tx_interval_ms") == 100 and not v.get("poll")
                         for v in details(runner).values()), 10, "the poll sequences")
    sides = wait_for(lambda: routers_at(rig, ("up", 100.0, 300.0)), 10, "routers at 100 x 3")
    assert set(sides) == {f"bird@{A4}", f"bird@{A6}", f"frr@{A4}", f"frr@{A6}", f"r2@{A4}"}
    assert {k: v["detect_time_ms"] for k, v in details(runner).items()} == dict.fromkeys(
        ("bird4", "bird6", "frr4", "frr6", "frrmh"), 300.0)
    assert details(runner)["frrmh"]["discarded"] == {}
    first = {k: s.changes for k, s in runner.sessions().items()}

    # a reload to 300 ms x 3 changes the timers live (Poll Sequence): no flap
    runner.reconfigure(appliance(SLOW))
    wait_for(lambda: all(v.get("tx_interval_ms") == 300 and not v.get("poll")
                         for v in details(runner).values()), 10, "300 ms after the poll")
    wait_for(lambda: routers_at(rig, ("up", 300.0, 900.0)), 10, "routers at 300 x 3")
    assert {k: s.changes for k, s in runner.sessions().items()} == first
    assert all_up(runner)

    # from a fresh start at 300 ms x 3: kill the child; the runner restarts it
    pid = runner.status()["child"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: runner.status()["child"]["pid"] not in (None, pid), 10, "a new child")
    wait_for(lambda: all_up(runner), 20, "sessions up again at 300 ms x 3")
    assert runner.status()["child"]["restarts"] == 1
    wait_for(lambda: {v.get("tx_interval_ms") for v in details(runner).values()} == {300.0},
             10, "the new child at 300 ms")


def test_port_cut_is_detected_within_the_detection_time_and_recovers(
        rig: Rig, runner: RunnerThread) -> None:
    wait_for(lambda: all_up(runner), 20, "sessions up")
    rig.lab.port_down(rig.lab.namespaces[f"{PREFIX}-sw"], rig.ports["rb"])
    try:
        cut = time.monotonic()
        wait_for(lambda: runner.sessions()["bird4"].state != "up", 5, "bird4 down")
        noticed = time.monotonic() - cut
        wait_for(lambda: runner.sessions()["bird6"].state != "up", 5, "bird6 down")
        sessions = runner.sessions()
        assert sessions["bird4"].diag == "detect_time_expired"
        assert sessions["frr4"].state == "up"  # the other router is unaffected
        assert noticed < 2.0  # generous: 0.3 s detection + polling on a busy machine
        assert "bfd_session_down" in runner.wakes
    finally:
        rig.lab.port_up(rig.lab.namespaces[f"{PREFIX}-sw"], rig.ports["rb"])
    wait_for(lambda: all_up(runner), 20, "sessions up after the port is back")


def test_single_hop_packets_with_a_lower_ttl_are_discarded(rig: Rig,
                                                           runner: RunnerThread) -> None:
    wait_for(lambda: all_up(runner), 20, "sessions up")
    # from the FRR router's address (a real session's peer), TTL 64: must be dropped
    down = struct.pack("!BBBBIIIII", 0x20, 1 << 6, 3, 24, 0xABCD, 0, 1_000_000, 1_000_000, 0)
    code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"s.setsockopt(socket.IPPROTO_IP,socket.IP_TTL,64);s.bind(('192.0.2.2',50000));"
            f"[s.sendto(bytes.fromhex('{down.hex()}'),('{A4}',3784)) for _ in range(3)]")
    rig.rf.run(os.environ.get("PYTHON", "python3"), "-c", code)
    wait_for(lambda: details(runner)["frr4"].get("discarded", {}).get("ttl", 0) >= 3, 5,
             "TTL discards counted")
    assert runner.sessions()["frr4"].state == "up"
    assert socket.inet_aton(A4)  # the address used above is the appliance's
