"""The etcd engine in a lab: three etcd members (TLS, client certificates), two
appliances running `speaker run` (L2 + BGP to BIRD), a client watching ARP on the wire.

One lab for the module (start-up is the expensive part); every test leaves it as it
found it: a1 leads blue (web, L2 + BGP), a2 leads green (api, L2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcdlab import API, WEB, EtcdLab, leads, owners_timeline, settle
from l2lab import SPEAKER
from routers import wait_for

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab, pytest.mark.etcd, pytest.mark.timeout(240),
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

PRIO = {"a1": {"blue": 200, "green": 100}, "a2": {"blue": 100, "green": 200}}
TTL, RENEW = 2, 0.5


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdLab]:
    wd: Path = tmp_path_factory.mktemp("etcdlab")
    try:
        with Lab("eet") as netlab:
            el = EtcdLab(netlab, wd, ttl=TTL)
            for name, prio in PRIO.items():
                el.configure(name, prio).start()
            settle(el)
            yield el
            for m in el.members:
                m.stop()
    finally:
        assert not leftover_namespaces("eet")


def test_groups_spread_tls_and_fencing_token_everywhere(lab: EtcdLab) -> None:
    s1, s2 = lab.engine_status("a1"), lab.engine_status("a2")
    assert s1["reason"] == "ok"
    assert s1["endpoint"].startswith("https://")
    blue, green = s1["groups"]["blue"], s2["groups"]["green"]
    assert blue["leader"]
    assert green["leader"]
    assert not s2["groups"]["blue"]["leader"]
    assert s2["groups"]["blue"]["holder"] == "a1"
    raw = lab.etcdctl("get", "/eet/blue/leader", "-w", "json")
    assert f'"create_revision":{blue["fencing_token"]}' in raw
    a1 = lab.appliances["a1"]
    metrics = a1.ns.run("curl", "-s", "http://127.0.0.1:9469/metrics").stdout
    assert f'speaker_election_fencing_token{{group="blue"}} {blue["fencing_token"]}' \
        in metrics.replace(".0\n", "\n")
    assert 'speaker_etcd_requests_total{op="lease_keepalive",result="ok"}' in metrics
    events = a1.events()
    assert any(e.get("event") == "etcd_leading" and e.get("group") == "blue"
               and e.get("fencing_token") == str(blue["fencing_token"]) for e in events)
    lab.client.run("ping", "-c", "2", "-i", "0.2", "-W", "1", WEB)
    lab.client.run("ping", "-c", "2", "-i", "0.2", "-W", "1", API)
    human = a1.ns.run(SPEAKER, "status", "-s", str(a1.sock), timeout=20).stdout
    assert "etcd: https://198.51.100." in human
    assert f"blue: fencing token {blue['fencing_token']}" in human
    print(human)


def test_wrong_client_certificate_gives_a_clear_status_reason(lab: EtcdLab) -> None:
    a2 = lab.appliances["a2"]
    a2.mark()
    lab.configure("a2", PRIO["a2"], cert="rogue")
    a2.ns.run("kill", "-HUP", str(a2.proc.pid) if a2.proc else "0")
    wait_for(lambda: lab.engine_status("a2")["reason"] == "tls_error", timeout=20,
             interval=0.3, what="tls_error on a2")
    st = lab.engine_status("a2")
    assert not st["groups"]["green"]["leader"]
    assert "certificate" in (st["last_error"] or "").lower() or "tsi" in (
        st["last_error"] or "").lower()
    # a1 takes green over (a2's lease expired on the server), then a2 comes back
    wait_for(lambda: leads(lab, "a1", "green"), timeout=15,
             interval=0.3, what="a1 leads green")
    lab.configure("a2", PRIO["a2"])
    a2.ns.run("kill", "-HUP", str(a2.proc.pid) if a2.proc else "0")
    settle(lab)


def test_drain_hands_over_without_overlap_and_undrain_preempts_back(lab: EtcdLab) -> None:
    a1, a2 = lab.appliances["a1"], lab.appliances["a2"]
    a2.mark()
    lab.client.run("ping", "-c", "1", "-W", "1", WEB, check=False)
    watch = lab.watch_arp(WEB, 30)
    time.sleep(0.3)
    a1.ns.run(SPEAKER, "drain", "-s", str(a1.sock), timeout=20)
    a2.wait_event("etcd_leading", group="blue", timeout=10)
    time.sleep(0.3)
    overlap, gap = owners_timeline(watch.stop())
    assert overlap == 0.0, f"two owners for {overlap * 1000:.1f} ms"
    assert gap < TTL  # the key was deleted: no wait for the lease to expire
    print(f"drain: ARP gap {gap * 1000:.0f} ms, overlap {overlap * 1000:.0f} ms")
    assert lab.engine_status("a1")["groups"]["blue"]["resigned"]
    a1.ns.run(SPEAKER, "undrain", "-s", str(a1.sock), timeout=20)
    settle(lab)


def test_one_member_killed_changes_no_leadership(lab: EtcdLab) -> None:
    apps = lab.appliances.values()
    for app in apps:
        app.mark()
    using = lab.engine_status("a1")["endpoint"]
    raft_leader = lab.raft_leader()
    # the member a1 talks to, unless it is the raft leader (then another follower): a
    # raft leader's death stalls every write for an election (docs/etcd.md)
    victim = next(m for m in lab.members if m.client_url == using
                  and m.client_url != raft_leader) if using != raft_leader else next(
        m for m in lab.members if m.client_url != raft_leader)
    victim.stop()
    try:
        time.sleep(3 * TTL)
        for app in apps:
            lost = [(e.get("group"), e.get("reason")) for e in app.events()
                    if e.get("event") == "leader_lost"]
            assert not lost, (app.name, lost, victim.name, raft_leader)
        assert lab.engine_status("a1")["groups"]["blue"]["leader"]
        if victim.client_url == using:
            assert lab.engine_status("a1")["endpoint"] != using  # moved to another member
    finally:
        victim.start(lab.cluster, state="existing")
    time.sleep(1)


def test_partitioned_leader_is_silent_before_the_new_leader_speaks(lab: EtcdLab) -> None:
    a2 = lab.appliances["a2"]
    a2.mark()
    lab.client.run("ping", "-c", "1", "-W", "1", WEB, check=False)
    watch = lab.watch_arp(WEB, 30)
    bgp_plain: list[tuple[float, set[str]]] = []
    time.sleep(0.5)
    cut = time.monotonic()
    lab.partition("a1")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            bgp_plain.append((time.monotonic(), lab.plain_routes()))
            if bgp_plain[-1][1] == {"192.0.2.12"}:
                break
        a2.wait_event("etcd_leading", group="blue", timeout=10)
        time.sleep(0.5)
        replies = watch.stop()
        overlap, gap = owners_timeline(replies)
        assert overlap == 0.0, f"two owners for {overlap * 1000:.1f} ms"
        assert {m for _, m in replies} == {"02:00:00:00:00:0b", "02:00:00:00:00:0c"}
        first_new = min(t for t, m in replies if m.endswith("0c"))
        # a2 can only win after a1's lease expired on the server: >= TTL after the cut
        # minus one renewal interval; the whole takeover within TTL + renewal + slack
        assert first_new - cut < TTL + RENEW + 3.0
        assert all(len(hops) <= 1 for _, hops in bgp_plain), bgp_plain
        assert bgp_plain[-1][1] == {"192.0.2.12"}
        a1 = lab.appliances["a1"]
        assert any(e.get("event") == "etcd_step_down" and e.get("group") == "blue"
                   and e.get("reason") in ("lease_unrenewed", "no_etcd")
                   for e in a1.events()), a1.events()[-10:]
        print(f"partition: ARP gap {gap * 1000:.0f} ms, overlap {overlap * 1000:.0f} ms")
    finally:
        lab.heal("a1")
    settle(lab)


def test_leader_death_fails_over_within_ttl_and_a_renewal(lab: EtcdLab) -> None:
    a2 = lab.appliances["a2"]
    a2.mark()
    lab.client.run("ping", "-c", "1", "-W", "1", WEB, check=False)
    watch = lab.watch_arp(WEB, 30)
    time.sleep(0.3)
    cut = time.monotonic()
    lab.death("a1")
    try:
        a2.wait_event("etcd_leading", group="blue", timeout=10)
        wait_for(lambda: lab.plain_routes() == {"192.0.2.12"}, timeout=10, interval=0.1,
                 what="BIRD: a2's plain route")
        time.sleep(0.3)
        replies = watch.stop()
        first_new = min(t for t, m in replies if m.endswith("0c"))
        took = first_new - cut
        print(f"death: VIP answered by a2 {took:.2f} s after the cut")
        assert took < TTL + RENEW + 1.0  # lease expiry + one renewal + the pass, noise
        lab.client.run("ping", "-c", "2", "-i", "0.2", "-W", "1", WEB)
    finally:
        lab.revive("a1")
    settle(lab)


def test_all_members_killed_everyone_steps_down_then_recovers(lab: EtcdLab) -> None:
    for m in lab.members:
        m.stop()
    try:
        wait_for(lambda: not any(leads(lab, n, g) for n in ("a1", "a2")
                                 for g in ("blue", "green")),
                 timeout=TTL + 2, interval=0.1, what="every leader stepped down")
        time.sleep(0.5)
        answers = lab.client.run("arping", "-c", "2", "-w", "2", "-I", "eth0", WEB,
                                 check=False).stdout
        assert "reply from" not in answers.lower(), answers
        assert lab.engine_status("a1")["reason"] in ("unreachable", "timeout")
        assert lab.plain_routes() == set()
    finally:
        for m in lab.members:
            m.start(lab.cluster, state="existing")
    settle(lab, timeout=60)
