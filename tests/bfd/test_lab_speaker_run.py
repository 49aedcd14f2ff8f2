"""`speaker run` end to end with BFD: the factory starts the BFD child, the BIRD
router configured by `speaker router-config` brings BFD up with it, `speaker status`
and the metrics show the session, a port cut marks the path suspect, and a reload
that turns BFD off (and on again) stops (and starts) the session live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from speaker.lab.netns import Lab, leftover_namespaces, require_root
from tests.bfd.bgp_rig import VIP, Rig, build, wait

pytestmark = [pytest.mark.lab, pytest.mark.bfd]
PREFIX = "ebfe"
FAST = {"min_tx": "100ms", "min_rx": "100ms", "multiplier": 3}


@pytest.fixture
def rig() -> Iterator[Rig]:
    if not require_root():
        pytest.skip("lab tests need root")
    with tempfile.TemporaryDirectory(prefix="ebfe-") as tmp, Lab(PREFIX) as lab:
        the_rig = build(lab, Path(tmp), {"lb1": FAST})
        try:
            yield the_rig
        finally:
            the_rig.ctl.close()
            app = the_rig.apps["lb1"]
            if app.proc is not None:
                code = app.ns.stop(app.proc)
                assert code == 0, app.log_path.read_text()[-3000:]
    assert not leftover_namespaces(PREFIX)


def reload(rig: Rig, bfd: object) -> None:
    app = rig.apps["lb1"]
    cfg = yaml.safe_load(app.config_path.read_text())
    cfg["bgp"]["peers"][0]["bfd"] = bfd
    app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = subprocess.run([sys.executable, "-m", "speaker", "reload", "--json", "-s",
                          str(app.socket)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["ok"], out.stdout


def test_bfd_up_with_bird_in_status_and_metrics_then_suspect_on_port_cut(rig: Rig) -> None:
    app = rig.apps["lb1"]
    wait(lambda: "192.0.2.11" in rig.ctl.next_hops(f"{VIP}/32"), 60, "the VIP at BIRD via lb1")
    peer = wait(lambda: (p := app.peer()).get("bfd", {}) and p["bfd"]["state"] == "up" and p,
                30, "BFD up in speaker status")
    assert peer["bfd"]["min_tx_ms"] == 100
    assert peer["bfd"]["multiplier"] == 3
    assert peer["path"] == "ok"
    bird = rig.router.birdc("show", "bfd", "sessions")
    assert "192.0.2.11" in bird
    assert " Up " in bird
    assert "0.100" in bird  # BIRD runs the timers router-config gave it
    metrics = app.metrics()
    assert 'speaker_bfd_session_up{peer="r1"} 1.0' in metrics
    changes = app.peer()["bfd"]["changes"]  # 1 (down -> up), more after a load flap
    assert changes >= 1
    assert f'speaker_bfd_state_changes_total{{peer="r1"}} {float(changes)}' in metrics
    doc = app.status() or {}
    child = doc["components"]["BfdRunner"]["child"]
    assert child["running"]
    assert child["sched"].startswith(("rr", "nice"))

    # the router's side of the link goes away: BFD down at once, path suspect,
    # although BGP still looks established until its hold timer runs out
    rig.lab.port_down(rig.front, app.port)
    try:
        peer = wait(lambda: (p := app.peer()).get("path") == "suspect" and p, 10,
                    "path suspect")
        assert peer["path_reason"] == "bfd_down"
        assert peer["bfd"]["diag"] == "detect_time_expired"
    finally:
        rig.lab.port_up(rig.front, app.port)
    wait(lambda: app.peer().get("path") == "ok", 30, "path ok again")

    # reload: BFD off stops the child (the router's session goes down), on again restarts it
    reload(rig, False)
    wait(lambda: app.peer().get("bfd", 1) is None, 10, "no bfd entry")
    wait(lambda: not (app.status() or {})["components"]["BfdRunner"]["child"]["running"], 10,
         "child stopped")
    reload(rig, FAST)
    wait(lambda: (app.peer().get("bfd") or {}).get("state") == "up", 30, "BFD up again")
    pid = (app.status() or {})["components"]["BfdRunner"]["child"]["pid"]
    assert pid is not None
    # the child dies with `speaker run` (PDEATHSIG): checked after the planned stop
    assert app.proc is not None
    app.ns.stop(app.proc)
    code = app.proc.returncode
    app.proc = None
    assert code == 0, app.log_path.read_text()[-3000:]
    wait(lambda: not os.path.exists(f"/proc/{pid}"), 5, "the BFD child gone")
