"""Reload reconciles the parts, in the namespace lab: real BIRD, real ARP on the wire.

One appliance (`speaker run`, announce-only) peers with BIRD on the front segment;
r1 on that segment is also the ARP client. Steps, in order, on one running daemon:
an L2 service added by reload is answered on the wire; a BGP service added by
reload reaches BIRD; single -> vrrp by reload starts the VRRP engine (adverts on the
wire); a change that needs a restart is rejected and the old config kept; a removed
L2 service is no longer answered and its address is gone from lo.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from speaker.lab.netns import Lab, leftover_namespaces, require_root
from speaker.lab.topology import DemoLab, LabSpec, build_demo

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not require_root(), reason="needs root")]
PREFIX = "era"
L2_VIP = "192.0.2.100"
BGP_VIP2 = "203.0.113.20"


def wait(what: str, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLab]:
    workdir = tmp_path_factory.mktemp("reload-lab")
    with Lab(PREFIX) as lab:
        built = build_demo(lab, workdir, LabSpec(appliances=1, backends=1, quorum=1))
        try:
            yield built
        finally:
            for app in built.appliances:
                if app.proc is not None and app.proc.poll() is None:
                    app.ns.stop(app.proc)
            built.router.stop()
    assert leftover_namespaces(PREFIX) == []


def reload_with(demo: DemoLab, change: Callable[[dict[str, Any]], None]
                ) -> subprocess.CompletedProcess[str]:
    app = demo.appliances[0]
    cfg = yaml.safe_load(app.config_path.read_text())
    change(cfg)
    app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "speaker", "reload", "-s", str(app.socket)],
                          capture_output=True, text=True, timeout=60, check=False)


def arp_answers(demo: DemoLab, vip: str) -> str:
    """arping from r1 on the front segment; the replying MACs in lower case."""
    r1 = demo.router.ns
    out = r1.run("arping", "-c", "2", "-w", "3", "-I", "eth0", vip, check=False).stdout
    return out.lower()


def mac(demo: DemoLab) -> str:
    app = demo.appliances[0]
    return app.ns.run("cat", "/sys/class/net/eth0/address").stdout.strip().lower()


def l2_service(vip: str = L2_VIP) -> dict[str, Any]:
    return {"name": "arp", "vip": vip, "ports": [80], "announce": "l2",
            "backends": [{"address": "198.51.100.21", "port": 8080}],
            "health": {"type": "none"}, "drain_time": "1s"}


def test_reload_reconciles_the_parts(demo: DemoLab) -> None:
    app = demo.appliances[0]
    wait("READY", lambda: (app.status() or {}).get("ready"))
    wait("the VIP at BIRD", lambda: demo.router.routes().get("203.0.113.10/32"))
    assert "reply from" not in arp_answers(demo, L2_VIP)

    # 1. an L2 service on an appliance that had none: a responder answers on the wire
    result = reload_with(demo, lambda c: c["services"].append(l2_service()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "part l2 started" in result.stdout
    assert f"vip {L2_VIP} gained (service arp)" in result.stdout
    assert wait("an ARP reply from the appliance", lambda: mac(demo) in arp_answers(demo, L2_VIP))
    status = app.status() or {}
    vip = next(v for v in status["vips"] if v["vip"] == L2_VIP)
    assert vip["l2"]["owned"] is True
    # the one sysctl table covers the new client-facing L2 duties
    assert app.ns.run("sysctl", "-n", "net.ipv4.conf.eth0.arp_ignore").stdout.strip() == "1"
    assert status["sysctls"]["mismatches"] == []

    # 2. a BGP service added by reload reaches BIRD
    second = {"name": "web2", "vip": BGP_VIP2, "ports": [81], "health": {"type": "none"},
              "backends": [{"address": "198.51.100.21", "port": 8080}]}
    result = reload_with(demo, lambda c: c["services"].append(second))
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait("the new VIP at BIRD", lambda: demo.router.routes().get(f"{BGP_VIP2}/32"))

    # 3. single -> vrrp: the VRRP engine starts and leads alone; L2 keeps answering
    def vrrp(c: dict[str, Any]) -> None:
        c["election"] = {"engine": "vrrp", "preset": "fast", "vrrp": {"interface": "eth0"},
                         "groups": [{"name": "default", "vrid": 61, "priority": 150}]}
    result = reload_with(demo, vrrp)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "part election replaced (single -> vrrp)" in result.stdout
    wait("VRRP master", lambda: (app.status() or {}).get("election", {}).get(
        "default", {}).get("state") == "master")
    capture = demo.router.ns.run("timeout", "3", "tcpdump", "-c", "2", "-nni", "eth0", "vrrp",
                                 check=False)
    assert "vrid 61" in capture.stdout.lower(), capture.stdout + capture.stderr
    assert wait("ARP still answered", lambda: mac(demo) in arp_answers(demo, L2_VIP))

    # 4. what cannot change live: rejected, named, the running config kept
    result = reload_with(demo, lambda c: c["metrics"].update(port=9555))
    assert result.returncode == 1
    assert "restart_required: metrics.port" in result.stderr
    status = app.status() or {}
    assert status["config"]["last_reload"]["ok"] is False
    assert {v["vip"] for v in status["vips"]} >= {L2_VIP, BGP_VIP2}
    reload_with(demo, lambda c: c["metrics"].update(port=9469))

    # 5. the L2 service removed: not answered any more, its address gone from lo
    result = reload_with(demo, lambda c: c.update(
        services=[s for s in c["services"] if s["name"] != "arp"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"vip {L2_VIP} lost (service arp)" in result.stdout
    wait("the address off lo", lambda: L2_VIP not in app.ns.run(
        "ip", "-4", "addr", "show", "dev", "lo").stdout)
    assert "reply from" not in arp_answers(demo, L2_VIP)
    assert "part l2 stopped" in result.stdout
    metrics = app.metrics()
    assert f'vip="{L2_VIP}"' not in metrics
    assert app.proc is not None
    assert app.proc.poll() is None

    # 6. SIGTERM: routes withdrawn at BIRD, then the VIP addresses leave lo; exit 0
    app.ns.stop(app.proc, timeout=30)
    assert app.proc.returncode == 0
    wait("the route gone at BIRD", lambda: not demo.router.routes().get("203.0.113.10/32"))
    on_lo = app.ns.run("ip", "-4", "addr", "show", "dev", "lo").stdout
    assert "203.0.113.10" not in on_lo
    assert BGP_VIP2 not in on_lo

