"""Hostile neighbours on the wire against `speaker run`: forged adverts, bad ARP/NDP, drains.

Real frames in namespaces (prefix `eti`): a switch, two appliances (or one), a
client that forges, probes and watches (tests/isolation/wire_watch.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from l2lab import SPEAKER, Group, Segment, Vip

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab, pytest.mark.isolation,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

VIP, VIP6 = "192.0.2.100", "2001:db8::100"
FRONT = [Vip("web", VIP, "front")]
WATCH = str(Path(__file__).resolve().parent / "wire_watch.py")
PYTHON = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Segment]:
    with Lab("eti") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2"])
    assert not leftover_namespaces("eti")


def watch(seg: Segment, *args: str, timeout: float = 60) -> dict[str, Any]:
    out = seg.client.run(PYTHON, WATCH, *args, timeout=timeout)
    return dict(json.loads(out.stdout))


def metric(app: Any, line_start: str) -> float:
    text = app.ns.run("curl", "-s", "http://127.0.0.1:9469/metrics").stdout
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def start_pair(seg: Segment, **kw: Any) -> None:
    a1, a2 = seg.appliances["a1"], seg.appliances["a2"]
    seg.configure("a1", [Group("front", 51, 150)], FRONT,
                  **({"peers": ["192.0.2.12"]} if kw.get("peers") else {})).start()
    a1.wait_event("leader_gained", group="front", timeout=20)
    a1.wait_event("vip_owned", vip=VIP)
    seg.configure("a2", [Group("front", 51, 100)], FRONT,
                  **({"peers": ["192.0.2.11"]} if kw.get("peers") else {})).start()
    a2.wait_event("timing_child_started", timeout=20)
    time.sleep(0.5)  # a2 hears a1 and settles as backup
    seg.prime(VIP)


@pytest.mark.parametrize(("peers", "reason"), [(True, "not_a_peer"),
                                               (False, "interval_out_of_range")])
def test_forged_advert_changes_nothing(pair: Segment, peers: bool, reason: str) -> None:
    """One host on the segment forges VRRPv3 for the group (TTL 255, VRID 51, priority 254,
    interval 40.95 s). With a peer list it is not a peer; without one its interval is
    outside the sane range. Either way: no state change, a1 keeps answering, counted."""
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair, peers=peers)
    assert not [e for e in a2.events() if e.get("event") == "leader_lost"]  # never led
    a1.mark()
    a2.mark()
    watch(pair, "forge", "eth0", "192.0.2.66", "51", "254", "4095", "5")
    time.sleep(1.5)  # > 3 x the fast preset's master-down interval
    for app in (a1, a2):
        kinds = {e.get("event") for e in app.events()}
        assert not kinds & {"leader_lost", "leader_gained", "vip_released"}, app.name
        app.wait_event("vrrp_advert_rejected", reason=reason, src="192.0.2.66")
        assert metric(app, f'speaker_vrrp_adverts_discarded_total{{reason="{reason}"}}') >= 5
    assert pair.who_answers(VIP) == {a1.mac}


def test_hostile_arp_and_ndp_get_no_answer(pair: Segment) -> None:
    """Malformed or misaddressed requests for the owned VIPs: only the good ones answered."""
    a1 = pair.appliances["a1"]
    vips = [Vip("web", VIP, "default"), Vip("web6", VIP6, "default")]
    pair.configure("a1", [Group("default", 51, 100)], vips, engine="single").start()
    a1.wait_event("vip_owned", vip=VIP6, timeout=20)
    time.sleep(3.5)  # the takeover GARP/NA rounds are over (they would look like answers)
    answered = watch(pair, "hostile", "eth0", a1.mac)["answered"]
    assert answered == {
        "arp_good": True, "arp_other_unicast_dst": False, "arp_broadcast_sender": False,
        "arp_multicast_sha": False, "arp_bad_hlen": False, "arp_bad_ptype": False,
        "ns_good": True, "ns_other_unicast_dst": False, "ns_hop_limit_64": False,
        "ns_bad_checksum": False, "ns_unspecified_with_lladdr": False,
    }
    time.sleep(1.2)  # the child reports its metrics once a second
    assert metric(a1, 'speaker_l2_frames_rejected_total{interface="eth0",reason="not_for_us"}'
                  ) >= 2
    assert metric(a1, 'speaker_l2_frames_rejected_total{interface="eth0",'
                      'reason="ns_bad_checksum"}') >= 1


def test_drain_leaves_no_moment_without_exactly_one_answer(pair: Segment) -> None:
    """`speaker drain` on the leader: an ARP request every 10 ms, before, during and after
    the handover, is answered by exactly one MAC (first a1, then a2)."""
    a1, a2 = pair.appliances["a1"], pair.appliances["a2"]
    start_pair(pair)
    a2.mark()
    with (pair.workdir / "probe.json").open("w") as out:
        probe = pair.client.spawn([PYTHON, WATCH, "arp", "eth0", VIP, "10", "0.01"],
                                  stdout=out)
    time.sleep(1.5)
    a1.ns.run(SPEAKER, "drain", "-s", str(a1.sock))
    a2.wait_event("leader_gained", group="front")
    probe.wait(timeout=30)
    requests = json.loads((pair.workdir / "probe.json").read_text())["requests"]
    seen = [r for r in requests[:-10] if r["at"] is not None]  # the last 100 ms: in flight
    assert len(seen) > 200
    bad = [r for r in seen if len(r["macs"]) != 1]
    assert bad == [], f"{len(bad)} of {len(seen)} requests not answered by exactly one MAC"
    owners = [r["macs"][0] for r in seen]
    assert owners[0] == a1.mac
    assert owners[-1] == a2.mac
    switches = sum(1 for x, y in itertools.pairwise(owners) if x != y)
    assert switches == 1
    a1.wait_event("vip_released", reason="new_owner_announced", vip=VIP)


def reload(app: Any) -> dict[str, Any]:
    out = app.ns.run(SPEAKER, "reload", "--json", "-s", str(app.sock), check=False,
                     timeout=60)
    return dict(json.loads(out.stdout)) if out.stdout.strip() else {"stderr": out.stderr}


def test_hostile_reloads_are_rejected_and_the_daemon_keeps_serving(pair: Segment) -> None:
    """A 50,000-deep YAML list (refused by the loader's depth limit; without it the C
    parser segfaults, which the isolated child turns into a rejection), a FIFO as the config file, a
    `hold_time: .inf`: each reload is rejected with a reason, the daemon keeps running and
    answering; then a good reload is adopted. No log line shows `None` or a float with
    more than 6 decimals, and a node that never led logs no `leader_lost`."""
    a1 = pair.appliances["a1"]
    pair.configure("a1", [Group("default", 51, 100)], [Vip("web", VIP, "default")],
                   engine="single").start()
    a1.wait_event("vip_owned", vip=VIP, timeout=30)
    good = a1.config.read_text()
    a1.config.write_text("services: " + "[" * 50_000 + "]" * 50_000 + "\n")
    answer = json.dumps(reload(a1))  # the loader's depth limit, or the child's crash
    assert "nested deeper" in answer or "crashed" in answer, answer
    a1.config.unlink()
    os.mkfifo(a1.config)
    assert "not a regular file" in json.dumps(reload(a1))
    a1.config.unlink()
    a1.config.write_text(good.replace("dataplane: {ipvs: false}",
                                      "dataplane: {ipvs: false}\nbgp: {local_asn: 65010, "
                                      "peers: [{name: r1, address: 192.0.2.1, asn: 65000, "
                                      "hold_time: .inf}]}"))
    assert "hold_time" in json.dumps(reload(a1))
    assert a1.proc is not None
    assert a1.proc.poll() is None
    assert a1.status()["config"]["last_reload"]["ok"] is False
    assert pair.who_answers(VIP) == {a1.mac}
    a1.config.write_text(good)
    assert reload(a1).get("ok") is True
    log = a1.log.read_text()
    assert "None" not in log
    assert not re.search(r"=\d+\.\d{7,}\b", log), re.findall(r"\S+=\d+\.\d{7,}", log)[:3]
    assert "leader_lost" not in log
