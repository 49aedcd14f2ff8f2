"""DNS records follow the VIP, end to end: two `speaker run` appliances (BGP ECMP to
BIRD) publish to a real BIND 9 primary by RFC 2136 with TSIG; a client resolves."""

from __future__ import annotations

import copy
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.lab.bind import KEY, SECRET, ZONE, Bind
from speaker.lab.netns import Lab, leftover_namespaces
from speaker.lab.topology import VIP, DemoLab, LabSpec, build_demo

pytestmark = [pytest.mark.lab, pytest.mark.dns]

PREFIX = "edn"
WEB = f"web.{ZONE}"
API = f"api.{ZONE}"
FOREIGN = "192.0.2.99"


def dns_section(secret: str = SECRET) -> dict[str, Any]:
    return {"owner": "lab-fleet", "refresh": "2s", "claim_lifetime": "6s", "timeout": "1s",
            "servers": [{"address": "192.0.2.1", "zone": ZONE,
                         "tsig": {"name": KEY, "secret": secret}}]}


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[DemoLab, Bind]]:
    with tempfile.TemporaryDirectory(prefix="edn-") as tmp, Lab(PREFIX) as net:
        demo = build_demo(net, Path(tmp), LabSpec(appliances=2, backends=2, quorum=1))
        bind = Bind(demo.router.ns, Path(tmp), ["192.0.2.1", "198.51.100.129"])
        bind.nsupdate(f"update add {API} 60 A {FOREIGN}")   # someone else's record
        for app in demo.appliances:
            assert app.proc is not None
            app.ns.stop(app.proc)
            cfg = yaml.safe_load(app.config_path.read_text())
            cfg["services"][0]["dns"] = {"names": [WEB], "ttl": 5}
            api = copy.deepcopy(cfg["services"][0])
            api.update(name="api", vip="203.0.113.11", dns={"names": [API]})
            cfg["services"].append(api)
            cfg["dns"] = dns_section()
            app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            app.start(demo.workdir)
        try:
            yield demo, bind
        finally:
            for app in demo.appliances:
                print(f"--- {app.name} log (tail)\n" + app.log_path.read_text()[-3000:])
    assert leftover_namespaces(PREFIX) == []


def wait(what: str, check: Callable[[], bool], limit: float = 30.0) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def dns_status(demo: DemoLab, index: int) -> dict[str, Any]:
    doc = demo.appliances[index].status() or {}
    names: dict[str, Any] = doc.get("components", {}).get("DnsPublisher", {}).get("names", {})
    return names


def claims(bind: Bind, name: str) -> list[str]:
    return sorted(t.split("node=")[1].split(",")[0] for t in
                  bind.lookup(f"_edge-speaker.{name}", "TXT") if "node=" in t)


def test_record_follows_the_vip(lab: tuple[DemoLab, Bind]) -> None:
    demo, bind = lab
    client = demo.client
    took = wait("web resolves", lambda: bind.lookup(WEB, ns=client) == [VIP], 60)
    wait("both appliances claim it", lambda: claims(bind, WEB) == ["lb1", "lb2"])
    print(f"record resolvable {took:.2f} s after the appliances started")
    for name in demo.backends:
        demo.stop_backend(name)
    gone = wait("record removed", lambda: bind.lookup(WEB, ns=client) == [])
    assert bind.lookup(f"_edge-speaker.{WEB}", "TXT") == []
    print(f"all backends stopped -> record gone in {gone:.2f} s")
    for name in demo.backends:
        demo.start_backend(name)
    back = wait("record back", lambda: bind.lookup(WEB, ns=client) == [VIP])
    print(f"backends back -> record back in {back:.2f} s")
    # the record is back once either appliance has published; each says so in status
    wait("both report published", lambda: all(
        dns_status(demo, i).get(WEB, {}).get("state") == "published" for i in (0, 1)), 10)


def test_a_dead_appliance_leaves_the_record_served_by_the_other(
        lab: tuple[DemoLab, Bind]) -> None:
    demo, bind = lab
    wait("both claim", lambda: claims(bind, WEB) == ["lb1", "lb2"])
    lb1 = demo.appliances[0]
    assert lb1.proc is not None
    lb1.ns.stop(lb1.proc, sig=signal.SIGKILL)      # dies without withdrawing anything
    deadline = time.monotonic() + 8.0              # beyond lb1's claim lifetime (6 s)
    while time.monotonic() < deadline:
        assert bind.lookup(WEB, ns=demo.client) == [VIP]
        time.sleep(0.2)
    # lb2 renews its claim; lb1's expired claim is cleared by lb2's next renewal
    wait("lb1's stale claim cleared", lambda: claims(bind, WEB) == ["lb2"], 10)
    lb1.start(demo.workdir)
    wait("lb1 claims again", lambda: claims(bind, WEB) == ["lb1", "lb2"], 60)


def test_planned_stop_withdraws_only_this_appliances_claim(
        lab: tuple[DemoLab, Bind]) -> None:
    demo, bind = lab
    wait("both claim", lambda: claims(bind, WEB) == ["lb1", "lb2"], 60)
    lb2 = demo.appliances[1]
    assert lb2.proc is not None
    lb2.ns.stop(lb2.proc)                          # SIGTERM: planned stop
    assert claims(bind, WEB) == ["lb1"]            # withdrawn before it exited
    assert bind.lookup(WEB, ns=demo.client) == [VIP]
    lb2.start(demo.workdir)
    wait("lb2 claims again", lambda: claims(bind, WEB) == ["lb1", "lb2"], 60)


def test_someone_elses_record_is_never_touched(lab: tuple[DemoLab, Bind]) -> None:
    demo, bind = lab
    wait("api reported foreign", lambda: dns_status(demo, 0).get(API, {}).get("state")
         == "foreign_owner", 60)
    assert dns_status(demo, 0)[API]["reason"] == "foreign_owner"
    assert bind.lookup(API) == [FOREIGN]
    assert bind.lookup(f"_edge-speaker.{API}", "TXT") == []


def test_a_wrong_tsig_key_is_a_clear_status_reason(lab: tuple[DemoLab, Bind]) -> None:
    demo, bind = lab
    lb2 = demo.appliances[1]
    good = lb2.config_path.read_text()
    cfg = yaml.safe_load(good)
    cfg["dns"] = dns_section(secret="A" * 43 + "=")
    lb2.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    try:
        assert lb2.api("reload")["ok"]
        wait("tsig error shown", lambda: dns_status(demo, 1).get(WEB, {}).get("reason")
             == "tsig_bad_signature", 20)
        assert dns_status(demo, 1)[WEB]["state"] == "error"
        assert bind.lookup(WEB, ns=demo.client) == [VIP]   # lb1 still serves it
    finally:
        lb2.config_path.write_text(good)
        lb2.api("reload")
    wait("lb2 recovers", lambda: dns_status(demo, 1).get(WEB, {}).get("state")
         == "published", 20)
