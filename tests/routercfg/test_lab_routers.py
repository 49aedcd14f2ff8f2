"""Lab: BIRD, FRR and GoBGP routers configured ONLY with `speaker router-config`
output peer (TCP-MD5, IPv4 and IPv6) with two real ExaBGP appliances, accept
exactly the VIPs, and reject what a misconfigured appliance announces outside
its pools."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from speaker.lab.netns import Lab, Namespace, leftover_namespaces
from speaker.routercfg.cli import router_config
from tests.routercfg import labkit

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

CONFIGS = Path(__file__).parent / "configs"
ROUTER_V4, ROUTER_V6 = "192.0.2.1", "2001:db8::1"
APPLIANCES = {"lb1": ("192.0.2.11", "2001:db8::11"), "lb2": ("192.0.2.12", "2001:db8::12")}
VIPS = {"203.0.113.10/32", "203.0.113.11/32", "2001:db8:100::10/128"}
OUTSIDE = {
    "203.0.113.200/32",  # a host route outside every pool
    "203.0.113.0/26",  # the pool itself: not a host route
    "198.51.100.0/24",  # somebody else's network
    "2001:db8:999::1/128",  # outside the IPv6 pool
    "2001:db8:100::/64",  # the IPv6 pool itself
}
SETTLE_S = 40.0
"""Safety bound for sessions to come up and routes to arrive (normally a few seconds)."""


def generated(vendor: str) -> str:
    """The router config exactly as `speaker router-config` writes it for the lab router."""
    result = CliRunner().invoke(router_config, [
        "-c", str(CONFIGS / "lab-lb1.yaml"), "-c", str(CONFIGS / "lab-lb2.yaml"),
        "--peer", ROUTER_V4, "--peer", ROUTER_V6, "--vendor", vendor])
    assert result.exit_code == 0, result.output
    return result.output


def _exabgp_config(name: str, v4: str, v6: str) -> str:
    good4 = ["203.0.113.10/32 next-hop self"]
    if name == "lb1":
        good4.append("203.0.113.11/32 next-hop self")
        extra4: list[str] = []
        extra6: list[str] = []
    else:
        # the backup of active-backup service "admin": worse MED and a prepended path
        good4.append("203.0.113.11/32 next-hop self med 100 as-path [65010 65010 65010]")
        extra4 = [f"{p} next-hop self" for p in sorted(OUTSIDE) if ":" not in p]
        extra6 = [f"{p} next-hop self" for p in sorted(OUTSIDE) if ":" in p]
    return labkit.exabgp_config(v4, [
        labkit.ExaPeer(ROUTER_V4, v4, 65010, 65000, "lab-md5-key", good4 + extra4,
                       graceful_restart=60),
        labkit.ExaPeer(ROUTER_V6, v6, 65010, 65000, "lab-md5-key",
                       ["2001:db8:100::10/128 next-hop self", *extra6]),
    ])


@contextlib.contextmanager
def site(tmp_path: Path) -> Iterator[Namespace]:
    """A switch, the router namespace (no daemon yet) and two ExaBGP appliances."""
    with Lab("esr") as lab:
        switch = lab.switch("sw")
        router = lab.host("rt")
        lab.connect(router, switch, "eth0", [f"{ROUTER_V4}/24", f"{ROUTER_V6}/64"])
        for name, (v4, v6) in APPLIANCES.items():
            ns = lab.host(name)
            lab.connect(ns, switch, "eth0", [f"{v4}/24", f"{v6}/64"])
            labkit.start_exabgp(ns, tmp_path, name, _exabgp_config(name, v4, v6))
        yield router
    assert leftover_namespaces("esr") == []


def kernel_nexthops(router: Namespace, prefix: str) -> set[str]:
    """Next hops of the router's kernel route to `prefix` (what forwarding uses)."""
    family = "-6" if ":" in prefix else "-4"
    out = router.run("ip", family, "route", "show", prefix).stdout.split()
    return {out[i + 1] for i, word in enumerate(out[:-1]) if word == "via"}


def assert_ecmp_and_backup_in_the_kernel(router: Namespace) -> None:
    """The ECMP VIP goes to both appliances; the active-backup VIP only to the leader."""
    labkit.wait_for(lambda: kernel_nexthops(router, "203.0.113.10") == {
        "192.0.2.11", "192.0.2.12"}, SETTLE_S, "an ECMP kernel route via both appliances")
    labkit.wait_for(lambda: kernel_nexthops(router, "2001:db8:100::10") == {
        "2001:db8::11", "2001:db8::12"}, SETTLE_S, "an IPv6 ECMP kernel route")
    assert kernel_nexthops(router, "203.0.113.11") == {"192.0.2.11"}
    assert kernel_nexthops(router, "203.0.113.200") == set()


def test_bird_router_accepts_exactly_the_vips(tmp_path: Path) -> None:
    with site(tmp_path) as router:
        sock = labkit.start_bird(router, tmp_path, generated("bird"))
        protocols = ["edge_lb1_v4", "edge_lb1_v6", "edge_lb2_v4", "edge_lb2_v6"]
        labkit.wait_for(lambda: labkit.bird_established(router, sock, protocols),
                        SETTLE_S, "BIRD sessions with both appliances")
        routes = labkit.wait_for(
            lambda: (r := labkit.bird_routes(router, sock)) and all(
                len(r.get(v, ())) == 2 for v in VIPS) and r, SETTLE_S,
            "every VIP from both appliances")
        assert set(routes) == VIPS
        assert routes["203.0.113.10/32"] == {"edge_lb1_v4", "edge_lb2_v4"}
        assert routes["2001:db8:100::10/128"] == {"edge_lb1_v6", "edge_lb2_v6"}
        # the misconfigured appliance did send the outside routes: the filter dropped them
        # (the outside routes may arrive in a later UPDATE than the VIPs: wait for them)
        stats4 = labkit.wait_for(lambda: (st := labkit.bird_import_stats(
            router, sock, "edge_lb2_v4"))["filtered"] >= 3 and st, SETTLE_S,
            "3 outside IPv4 routes filtered")
        stats6 = labkit.wait_for(lambda: (st := labkit.bird_import_stats(
            router, sock, "edge_lb2_v6"))["filtered"] >= 2 and st, SETTLE_S,
            "2 outside IPv6 routes filtered")
        assert stats4["filtered"] == 3, stats4
        assert stats6["filtered"] == 2, stats6
        # active-backup: the backup path keeps its MED, so lb1's path is best
        admin = labkit.birdc(router, sock, "show", "route", "203.0.113.11/32", "all")
        assert "BGP.med: 100" in admin
        best = labkit.birdc(router, sock, "show", "route", "203.0.113.11/32", "primary")
        assert "edge_lb1_v4" in best
        # nothing is exported to the appliances
        for proto in protocols:
            assert "/" not in labkit.birdc(router, sock, "show", "route", "export", proto)
        assert_ecmp_and_backup_in_the_kernel(router)


def test_frr_router_accepts_exactly_the_vips(tmp_path: Path) -> None:
    with labkit.frr_dir() as run, site(tmp_path) as router:
        labkit.start_frr(router, run, generated("frr"))
        peers = [a for pair in APPLIANCES.values() for a in pair]
        labkit.wait_for(lambda: labkit.frr_established(router, run, peers), SETTLE_S,
                        "FRR sessions with both appliances")
        routes = labkit.wait_for(
            lambda: (r := labkit.frr_routes(router, run)) and all(
                len(r.get(v, ())) == 2 for v in VIPS) and r, SETTLE_S,
            "every VIP from both appliances")
        assert set(routes) == VIPS
        assert routes["203.0.113.10/32"] == {"192.0.2.11", "192.0.2.12"}
        assert routes["2001:db8:100::10/128"] == {"2001:db8::11", "2001:db8::12"}
        admin = labkit.vtysh(router, run, "show bgp ipv4 unicast 203.0.113.11/32 json")
        assert '"metric":100' in admin.replace(" ", "")
        for peer in peers:
            afi = "ipv6" if ":" in peer else "ipv4"
            sent = labkit.vtysh(router, run,
                                f"show bgp {afi} unicast neighbors {peer} advertised-routes")
            assert "/" not in sent.replace("0.0.0.0/0", ""), sent
        assert_ecmp_and_backup_in_the_kernel(router)


def test_gobgp_router_accepts_exactly_the_vips(tmp_path: Path) -> None:
    with site(tmp_path) as router:
        labkit.start_gobgp(router, tmp_path, generated("gobgp"))
        peers = [a for pair in APPLIANCES.values() for a in pair]
        labkit.wait_for(lambda: labkit.gobgp_established(router, peers), SETTLE_S,
                        "GoBGP sessions with both appliances")
        routes = labkit.wait_for(
            lambda: (r := labkit.gobgp_routes(router)) and all(
                len(r.get(v, ())) == 2 for v in VIPS) and r, SETTLE_S,
            "every VIP from both appliances")
        assert set(routes) == VIPS
        assert routes["203.0.113.10/32"] == {"192.0.2.11", "192.0.2.12"}
        assert routes["2001:db8:100::10/128"] == {"2001:db8::11", "2001:db8::12"}
        # lb2 did send the outside routes; the generated import policy dropped them
        received = labkit.wait_for(lambda: (got := labkit.gobgp_adj(
            router, "192.0.2.12", "adj-in") | labkit.gobgp_adj(
            router, "2001:db8::12", "adj-in")) >= OUTSIDE and got, SETTLE_S,
            "the outside routes in lb2's adj-in")
        assert received >= OUTSIDE
        for peer in peers:
            assert labkit.gobgp_adj(router, peer, "adj-out") == set()
