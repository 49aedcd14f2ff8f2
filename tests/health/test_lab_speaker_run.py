"""End to end: `speaker run` in the lab checks real backends; `speaker status` and
`speaker reload` show and keep per-backend state with reasons."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from health.conftest import HealthLab
from health.servers import HttpServer

pytestmark = pytest.mark.lab

B1, B2 = "192.0.2.11", "192.0.2.12"


def config(tmp: Path, interval: str) -> dict[str, Any]:
    return {
        "node": {"name": "lb1", "router_id": "192.0.2.1",
                 "interfaces": [{"name": "eth0", "role": "both"}]},
        "services": [{
            "name": "web", "vip": "203.0.113.10", "ports": [8280], "announce": "bgp",
            "backends": [{"address": B1, "name": "good"}, {"address": B2, "name": "busy"},
                         {"address": B1, "port": 8281, "name": "gone"}],
            "health": {"type": "http", "interval": interval, "timeout": "100ms", "rise": 2,
                       "fall": 2, "fast_interval": "100ms"},
            "quorum": {"min_healthy": 1},
        }],
        # BGP towards a router that is not there: this test is about health, and the
        # L2 responder does not yet stop on SIGTERM once it owns a VIP (reported)
        "bgp": {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.254",
                                               "asn": 65000, "families": ["ipv4-unicast"]}]},
        "dataplane": {"ipvs": False},
        "api": {"socket": str(tmp / "api.sock")},
        "metrics": {"enabled": False},
    }


def speaker(*args: str) -> Any:
    out = subprocess.run([sys.executable, "-m", "speaker", *args], capture_output=True,
                         text=True, timeout=30, check=False)
    # `speaker status` exits 1 while degraded (a backend down is part of this test)
    if out.returncode not in (0, 1):
        raise subprocess.CalledProcessError(out.returncode, out.args, out.stdout, out.stderr)
    return json.loads(out.stdout)


@pytest.fixture
def appliance(health_lab: HealthLab, tmp_path: Path) -> Iterator[Path]:
    good, busy = HttpServer(B1, 8280), HttpServer(B2, 8280)
    busy.mode = "503"
    health_lab.b1.call(good.start())
    health_lab.b2.call(busy.start())
    cfg = tmp_path / "speaker.yaml"
    cfg.write_text(yaml.safe_dump(config(tmp_path, "300ms")))
    ns = health_lab.lab.namespaces["esh-lb"]
    log = (tmp_path / "speaker.log").open("wb")
    proc = ns.spawn([sys.executable, "-m", "speaker", "run", "-c", str(cfg), "--runtime-dir",
                     str(tmp_path / "run")], stdout=log, stderr=log)
    try:
        yield cfg
    finally:
        ns.stop(proc)
        log.close()
        health_lab.b1.call(good.stop())
        health_lab.b2.call(busy.stop())
        assert proc.returncode == 0, (tmp_path / "speaker.log").read_text()[-3000:]


def backends(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (vip,) = doc["vips"]
    return {b["backend"]: b for b in vip["backends"]}


def wait_status(sock: Path, ready: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            doc = speaker("status", "--json", "-s", str(sock))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            doc = {}
        if doc and doc.get("vips") and ready(doc):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"status never became ready: {json.dumps(doc)[:2000]}")


def test_speaker_status_shows_each_backend_with_its_reason_and_reload_keeps_it(
        appliance: Path) -> None:
    sock = appliance.parent / "api.sock"

    def settled(doc: dict[str, Any]) -> bool:
        return all(b["check"] is not None for b in backends(doc).values()) and \
            backends(doc)["good"]["check"]["up"]

    doc = wait_status(sock, settled)
    rows = backends(doc)
    assert {k: (v["check"]["up"], v["check"]["reason"]) for k, v in rows.items()} == {
        "good": (True, "ok"), "busy": (False, "status_503"), "gone": (False, "refused")}
    assert rows["good"]["state"] == "backend_up"
    (vip,) = doc["vips"]
    assert (vip["healthy"], vip["total"]) == (1, 3)
    detail = doc["components"]["HealthChecker"]["services"]["web"]["backends"]
    assert detail["busy"]["last_reason"] == "status_503"
    assert detail["gone"]["port"] == 8281

    # reload with other timers: nothing flaps, the verdicts keep their age
    appliance.write_text(yaml.safe_dump(config(appliance.parent, "400ms")))
    speaker("reload", "--json", "-s", str(sock))
    time.sleep(1.0)
    after = backends(wait_status(sock, settled))
    for name in ("good", "busy", "gone"):
        assert after[name]["check"]["up"] == rows[name]["check"]["up"]
        assert after[name]["check"]["since_s"] > rows[name]["check"]["since_s"]
