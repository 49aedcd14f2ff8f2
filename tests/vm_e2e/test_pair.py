"""The whole forwarding path: two appliance VMs running `speaker run` with IPVS on.

The pair boots once for the module; tests run in file order and the last one kills
an appliance. See tests/vm_e2e/pair.py for the topology. The L2 tests come first:
ExaBGP takes a minute or two to start under TCG, and the BGP tests wait for both
appliances' routes at the router meanwhile.
"""

from __future__ import annotations

import collections
import ipaddress
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.vm.netns import sh
from tests.vm_e2e.flows import Backends, Flows, http_get
from tests.vm_e2e.pair import (
    CLIENT_DR,
    CLIENT_NAT,
    NODES,
    VIP_BGP,
    VIP_DR,
    VIP_NAT,
    Appliance,
    Pair,
    appliance_config,
    wait_for,
)

pytestmark = [pytest.mark.vm, pytest.mark.vm_e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def backends(pair: Pair) -> Iterator[Backends]:
    servers = Backends(pair.backends)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(scope="module")
def up(pair: Pair, backends: Backends) -> Pair:
    """Both speakers serving: one leader, every backend healthy in IPVS, both BGP
    sessions up. ExaBGP's start costs a minute or two of a TCG guest's only vCPU: the
    tests begin after it, so that health checks, reloads and drains are not starved."""
    for node in pair.nodes.values():
        wait_for(f"{node.name}'s API", node.ready, timeout=300, every=2)
    wait_for("both appliances' routes at the router (ECMP)", lambda: _both_announce(pair),
             timeout=420, every=2)
    wait_for("one leader", lambda: sum(n.leader() for n in pair.nodes.values()) == 1,
             timeout=120, every=1)
    for node in pair.nodes.values():
        wait_for(f"{node.name}: 3 healthy dests per service",
                 lambda node=node: _weights(node, VIP_DR, 80) == {"198.51.100.11": 1,
                                                                  "198.51.100.12": 1,
                                                                  "198.51.100.13": 1},
                 timeout=120, every=1)
    return pair


def _leader(pair: Pair) -> Appliance:
    (lead,) = [n for n in pair.nodes.values() if n.alive and n.leader()]
    return lead


def _other(pair: Pair, node: Appliance) -> Appliance:
    (other,) = [n for n in pair.nodes.values() if n is not node]
    return other


def _weights(node: Appliance, vip: str, port: int) -> dict[str, int]:
    out = node.vm.run("ipvsadm", "-Ln", "-t", f"{vip}:{port}", check=False)
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"->\s+([\d.]+):\d+\s+\w+\s+(\d+)", out)}


def _scheduler(node: Appliance, vip: str, port: int) -> str:
    out = node.vm.run("ipvsadm", "-Ln", "-t", f"{vip}:{port}", check=False)
    match = re.search(rf"TCP\s+{re.escape(vip)}:{port}\s+(\w+)", out)
    return match.group(1) if match else ""


def _knows(node: Appliance, flows: Flows, vip: str = VIP_DR) -> int:
    """How many of ``flows`` have an ESTABLISHED entry in this appliance's table, own or
    synced (closed flows of an earlier test can stay ESTABLISHED on an appliance that
    did not see them close: counting every entry let a drill start too early)."""
    return _forwarding(node, flows, vip, origins=("LOCAL", "SYNC"))


def _forwarding(node: Appliance, flows: Flows, vip: str = VIP_BGP,
                origins: tuple[str, ...] = ("LOCAL",)) -> int:
    """How many of ``flows`` (to ``vip``) this appliance forwards itself: its own
    ("LOCAL") IPVS entries for their client ports; entries a sync daemon received say
    "SYNC" (/proc/net/ip_vs_conn_sync, addresses and ports in hex)."""
    ports = flows.ports()
    vip_hex = f"{int(ipaddress.IPv4Address(vip)):08X}"
    count = 0
    for line in node.vm.run("cat", "/proc/net/ip_vs_conn_sync").splitlines()[1:]:
        fields = line.split()
        if (len(fields) >= 9 and fields[7] == "ESTABLISHED" and fields[8].upper() in origins
                and fields[3] == vip_hex and int(fields[2], 16) in ports):
            count += 1
    return count


def _reload(node: Appliance) -> Any:
    """`reload` through the API. The reload's isolated parse has a 10 s limit, which a
    TCG guest busy with ExaBGP can exceed: that rejection (and only that one) is
    retried, as an operator would, up to three times in all."""
    for _ in range(3):
        result = node.api("reload")
        if result["ok"] or not any("parsing took longer" in e for e in result["errors"]):
            break
        print(f"\n{node.name}: reload rejected for time, again: {result['errors']}")
    return result


def _both_announce(pair: Pair) -> bool:
    return pair.nexthops(VIP_BGP) == {str(NODES[n]["front"]) for n in pair.nodes}


def _route_nat_via(pair: Pair, node: Appliance) -> None:
    """NAT replies must pass the director that forwarded: point the backends at it."""
    for ns in pair.backends:
        sh("ip", "-n", ns, "route", "replace", f"{CLIENT_NAT}/32", "via",
           str(NODES[node.name]["back"]))


def test_sync_daemons_follow_the_election(up: Pair) -> None:
    def roles_match() -> bool:
        leaders = [n for n in up.nodes.values() if n.leader()]
        if len(leaders) != 1:
            return False  # mid-election
        lead = leaders[0]
        other = _other(up, lead)
        return ("master sync daemon (mcast=back, syncid=14" in lead.vm.run(
                    "ipvsadm", "-L", "--daemon")
                and "backup sync daemon (mcast=back, syncid=14" in other.vm.run(
                    "ipvsadm", "-L", "--daemon"))

    # A reconcile pass after the election's verdict switches the daemons.
    wait_for("master on the leader, backup on the other", roles_match, timeout=30, every=1)
    for node in up.nodes.values():
        assert node.vm.run("sysctl", "-n", "net.ipv4.vs.sloppy_tcp").strip() == "1"
        assert node.vm.run("sysctl", "-n", "net.ipv4.vs.sync_version").strip() == "1"


def test_l2_dr_spreads_by_scheduler(up: Pair) -> None:
    seen = collections.Counter(http_get(up.client, VIP_DR, CLIENT_DR) for _ in range(30))
    assert seen == {"be0": 10, "be1": 10, "be2": 10}  # rr over three healthy backends


def test_l2_nat_spreads_by_weight(up: Pair) -> None:
    _route_nat_via(up, _leader(up))
    seen = collections.Counter(http_get(up.client, VIP_NAT, CLIENT_NAT) for _ in range(25))
    assert seen == {"be0": 15, "be1": 5, "be2": 5}  # wrr 3:1:1


def test_stopped_backend_reaches_ipvs_weights(up: Pair, backends: Backends) -> None:
    backends.stop_http(2)
    try:
        for node in up.nodes.values():
            wait_for(f"{node.name}: be2 out of IPVS",
                     lambda node=node: _weights(node, VIP_DR, 80).get("198.51.100.13", 0) == 0,
                     timeout=60)
        seen = collections.Counter(http_get(up.client, VIP_DR, CLIENT_DR) for _ in range(10))
        assert "be2" not in seen
    finally:
        backends.start_http(2)
    for node in up.nodes.values():
        wait_for(f"{node.name}: be2 back", lambda node=node: _weights(
            node, VIP_DR, 80).get("198.51.100.13") == 1, timeout=60)


def test_reload_changes_scheduler_and_weight_in_place(up: Pair) -> None:
    for node in up.nodes.values():
        node.write_config(appliance_config(node.name, scheduler_nat="wlc",
                                           nat_weights=(1, 1, 4)))
        result = _reload(node)
        assert result["ok"], result
    for node in up.nodes.values():
        wait_for(f"{node.name}: wlc and weight 4", lambda node=node: (
            _scheduler(node, VIP_NAT, 80) == "wlc"
            and _weights(node, VIP_NAT, 80).get("198.51.100.13") == 4), timeout=60)
        log = node.vm.run("cat", "/tmp/speaker.log")
        after = log.rsplit("config_reloaded", 1)[1]
        assert "ipvs_edit_service" in after or "ipvs_edit" in after
        assert f"ipvs_add_service target=tcp:{VIP_NAT}" not in after  # edited, not re-added
    for node in up.nodes.values():  # back to the module's baseline
        node.write_config(appliance_config(node.name))
        assert _reload(node)["ok"]


def test_bgp_ecmp_both_appliances_forward(up: Pair) -> None:
    """Both appliances announce the BGP VIP, the router merges the routes, and the
    client's connections, hashed by the router, go through both to every backend."""
    wait_for("both appliances' routes at the router (ECMP)", lambda: _both_announce(up),
             timeout=420, every=2)
    seen = collections.Counter(http_get(up.client, VIP_BGP, CLIENT_DR) for _ in range(30))
    assert set(seen) == {"be0", "be1", "be2"}, seen  # mh with mh-port: ports spread
    flows = Flows(up.client, VIP_BGP, 40, CLIENT_DR)
    try:
        wait_for("flows echoing", lambda: flows.healthy() == 40, timeout=60)
        through = {name: _forwarding(node, flows) for name, node in up.nodes.items()}
    finally:
        flows.close()
    print(f"\nECMP: flows forwarded per appliance {through}")
    assert sum(through.values()) == 40
    assert all(through.values())  # both appliances forward


def test_bgp_withdrawal_moves_flows_that_keep_their_backend(up: Pair) -> None:
    """The ECMP set changes under established flows (one appliance withdraws the VIP,
    then announces it again): every flow keeps its backend. The flows that move to the
    leader were never in its table (the other appliance runs only a sync backup):
    `mh` maps them to the same backend and `sloppy_tcp` lets the leader take them
    mid-stream."""
    wait_for("ECMP", lambda: _both_announce(up), timeout=120, every=1)
    lead = _leader(up)
    other = _other(up, lead)
    flows = Flows(up.client, VIP_BGP, 40, CLIENT_DR)
    try:
        wait_for("flows echoing", lambda: flows.healthy() == 40, timeout=60)
        unknown = _forwarding(other, flows)
        assert unknown > 0  # flows through the other appliance, not in the leader's table
        other.api("drain", service="bgpdr")
        wait_for("only the leader's route", lambda: up.nexthops(VIP_BGP) == {
            str(NODES[lead.name]["front"])}, timeout=60, every=0.5)
        wait_for("every flow through the leader", lambda: _forwarding(lead, flows) == 40,
                 timeout=60)
        wait_for("flows settle", lambda: flows.healthy(1.0) + len(flows.broken) == 40,
                 timeout=40)
        withdrawn = flows.report()
        other.api("undrain", service="bgpdr")
        wait_for("ECMP again", lambda: _both_announce(up), timeout=60, every=0.5)
        wait_for("flows settle", lambda: flows.healthy(1.0) + len(flows.broken) == 40,
                 timeout=40)
        time.sleep(2)
        back = flows.report()
    finally:
        flows.close()
    print(f"\nBGP withdrawal ({unknown} flows unknown to the leader): {withdrawn}"
          f"\nBGP re-announcement: {back}")
    assert withdrawn.survived == withdrawn.total, withdrawn
    assert back.survived == back.total, back


def test_drain_hands_over_and_connections_survive(up: Pair) -> None:
    lead = _leader(up)
    other = _other(up, lead)
    flows = Flows(up.client, VIP_DR, 40, CLIENT_DR)
    try:
        wait_for("flows echoing", lambda: flows.healthy() == 40, timeout=30)
        wait_for("the backup knows every flow", lambda: _knows(other, flows) >= 40,
                 timeout=30)
        lead.vm.run("python3", "-m", "speaker", "drain", "-c",
                    "/etc/edge-speaker/speaker.yaml", timeout=240)
        wait_for("the other appliance leads", other.leader, timeout=60, every=0.5)
        wait_for("flows echo through the new leader", lambda: flows.healthy() >= 40,
                 timeout=30)
        report = flows.report()
    finally:
        flows.close()
    print(f"\ndrain: {report}")
    assert report.survived == report.total, report
    seen = {http_get(up.client, VIP_DR, CLIENT_DR) for _ in range(6)}
    assert seen == {"be0", "be1", "be2"}
    lead.api("undrain")
    wait_for("ECMP after the undrain", lambda: _both_announce(up), timeout=60, every=0.5)


def test_appliance_death_moves_vip_and_connections_survive(up: Pair) -> None:
    """The leader dies (switch ports cut, VM killed): the L2 VIP moves to the survivor,
    the router drops the dead appliance's BGP route after its hold time, and every
    established flow to either VIP goes on through the survivor."""
    lead = _leader(up)
    survivor = _other(up, lead)
    l2 = Flows(up.client, VIP_DR, 40, CLIENT_DR)
    bgp = Flows(up.client, VIP_BGP, 40, CLIENT_DR)
    try:
        wait_for("flows echoing", lambda: l2.healthy() == 40 and bgp.healthy() == 40,
                 timeout=60)
        wait_for("the backup knows every flow", lambda: _knows(survivor, l2) >= 40,
                 timeout=30)
        through_dead = _forwarding(lead, bgp)
        assert 0 < through_dead < 40  # ECMP: the dying appliance carries some BGP flows
        up.kill(lead.name)
        wait_for("the survivor leads", survivor.leader, timeout=60, every=0.5)
        wait_for("new connections to the L2 VIP", lambda: _try(up, VIP_DR), timeout=60)
        wait_for("the dead appliance's route gone", lambda: up.nexthops(VIP_BGP) == {
            str(NODES[survivor.name]["front"])}, timeout=60, every=0.5)
        wait_for("flows settle", lambda: l2.healthy(2.0) + len(l2.broken) == 40
                 and bgp.healthy(2.0) + len(bgp.broken) == 40, timeout=60)
        l2_report, bgp_report = l2.report(), bgp.report()
    finally:
        l2.close()
        bgp.close()
    print(f"\ndeath, L2: {l2_report}\ndeath, BGP ({through_dead} of 40 flows through the "
          f"dead appliance): {bgp_report}")
    assert l2_report.survived == l2_report.total, l2_report
    assert bgp_report.survived == bgp_report.total, bgp_report
    seen = {http_get(up.client, VIP_BGP, CLIENT_DR) for _ in range(12)}
    assert seen == {"be0", "be1", "be2"}  # the survivor serves new connections


def _try(pair: Pair, vip: str) -> bool:
    try:
        return http_get(pair.client, vip, CLIENT_DR, timeout=2).startswith("be")
    except OSError:
        return False
