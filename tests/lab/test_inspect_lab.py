"""`speaker explain` and `speaker plan` against a running appliance in the namespace
lab (BGP to a real BIRD, two HTTP backends): what they say matches what BIRD and the
kernel hold, and `plan` changes nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.lab.netns import Lab, leftover_namespaces, require_root
from speaker.lab.topology import VIP, DemoLab, LabSpec, build_demo

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not require_root(), reason="needs root")]
PREFIX = "eix"
NEW_VIP = "203.0.113.30"


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
    workdir = tmp_path_factory.mktemp("inspect-lab")
    with Lab(PREFIX) as lab:
        built = build_demo(lab, workdir, LabSpec(appliances=1, backends=2, quorum=1))
        try:
            app = built.appliances[0]
            wait("READY", lambda: (app.status() or {}).get("ready"))
            wait("the VIP at BIRD", lambda: built.router.routes().get(f"{VIP}/32"))
            yield built
        finally:
            for app in built.appliances:
                if app.proc is not None and app.proc.poll() is None:
                    app.ns.stop(app.proc)
            built.router.stop()
    assert leftover_namespaces(PREFIX) == []


def speaker(demo: DemoLab, *args: str) -> subprocess.CompletedProcess[str]:
    app = demo.appliances[0]
    r = subprocess.run([sys.executable, "-m", "speaker", *args, "-s", str(app.socket)],
                          capture_output=True, text=True, timeout=60, check=False)
    print("$", args, r.returncode, r.stdout, r.stderr)
    return r


def candidate(demo: DemoLab, tmp: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    cfg = yaml.safe_load(demo.appliances[0].config_path.read_text())
    change(cfg)
    path = tmp / "candidate.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_explain_follows_the_backends(demo: DemoLab) -> None:
    result = speaker(demo, "explain", VIP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "announced here (bgp)" in result.stdout
    assert "[ok] bgp peer r1" in result.stdout
    assert "route sent" in result.stdout
    assert "2 of 2 healthy" in result.stdout

    for name in list(demo.backends):
        demo.stop_backend(name)
    try:
        wait("the VIP gone at BIRD", lambda: not demo.router.routes().get(f"{VIP}/32"))
        result = speaker(demo, "explain", VIP)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "not announced here: no_healthy_backends" in result.stdout
        assert "[--] backends" in result.stdout
        assert "0 of 2 healthy" in result.stdout
        assert "route not sent" in result.stdout
    finally:
        for name in list(demo.backends):
            demo.start_backend(name)
    wait("the VIP back at BIRD", lambda: demo.router.routes().get(f"{VIP}/32"))

    unknown = speaker(demo, "explain", "192.0.2.250")
    assert unknown.returncode == 2
    assert "not the VIP of any service" in unknown.stderr


def test_plan_shows_the_change_and_applies_nothing(demo: DemoLab, tmp_path: Path) -> None:
    app = demo.appliances[0]
    wait("the VIP at BIRD", lambda: demo.router.routes().get(f"{VIP}/32"))

    def add_and_trim(cfg: dict[str, Any]) -> None:
        web = cfg["services"][0]
        extra = {**web, "name": "api", "vip": NEW_VIP, "health": {"type": "none"}}
        web["backends"] = web["backends"][:1]
        cfg["services"].append(extra)

    path = candidate(demo, tmp_path, add_and_trim)
    result = speaker(demo, "plan", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "would be ACCEPTED" in out
    assert f"vip {NEW_VIP} gained (service api)" in out
    assert "service web changed (backends)" in out
    assert f"add_address      {NEW_VIP}" in out
    assert f"announce         {NEW_VIP}/32" in out
    # nothing applied: BIRD, lo and the daemon's config are as before
    time.sleep(1.0)
    assert not demo.router.routes().get(f"{NEW_VIP}/32")
    assert NEW_VIP not in app.ns.run("ip", "-4", "addr", "show", "dev", "lo").stdout
    status = app.status() or {}
    assert NEW_VIP not in {v["vip"] for v in status["vips"]}

    blocked = candidate(demo, tmp_path, lambda c: c["metrics"].update(port=9555))
    result = speaker(demo, "plan", "-c", str(blocked))
    assert result.returncode == 1
    assert "would be REJECTED (restart_required)" in result.stdout
    assert "restart_required: metrics.port" in result.stdout

    invalid = candidate(demo, tmp_path, lambda c: c["services"][0].update(ports=[70000]))
    result = speaker(demo, "plan", "-c", str(invalid))
    assert result.returncode == 1
    assert "invalid_config" in result.stdout
    assert "services[0].ports" in result.stdout
    assert app.proc is not None
    assert app.proc.poll() is None


def test_status_watch_refreshes_until_ctrl_c(demo: DemoLab) -> None:
    app = demo.appliances[0]
    proc = subprocess.Popen([sys.executable, "-m", "speaker", "status", "--watch", "0.3",
                             "-s", str(app.socket)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.count("every 0.3 s") >= 2
    assert VIP in out
