"""Lab, end to end: a real appliance (`speaker run`, its own ExaBGP) and a
misconfigured ExaBGP appliance peer with a BIRD router loaded only with the
`speaker router-config` output for both appliance configs. The router takes
the VIPs from the real appliance (TCP-MD5, IPv4 and IPv6 sessions as the appliance
configures them) and drops what lies outside the pools."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from speaker.lab.netns import Lab, leftover_namespaces
from speaker.routercfg.cli import router_config
from tests.routercfg import labkit
from tests.routercfg.test_lab_routers import (
    CONFIGS,
    OUTSIDE,
    ROUTER_V4,
    ROUTER_V6,
    SETTLE_S,
    VIPS,
    _exabgp_config,
)

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]


def speaker_config(tmp: Path) -> Path:
    """lab-lb1.yaml made runnable here: announce-only (no IPVS), no health probes."""
    data = yaml.safe_load((CONFIGS / "lab-lb1.yaml").read_text())
    for svc in data["services"]:
        svc["health"] = {"type": "none"}
    data["dataplane"] = {"ipvs": False, "state_file": str(tmp / "ipvs-owned")}
    data["api"] = {"socket": str(tmp / "lb1.sock")}
    data["metrics"] = {"enabled": False}
    path = tmp / "lb1.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_bird_router_peers_with_speaker_run(tmp_path: Path) -> None:
    lb1_config = speaker_config(tmp_path)
    result = CliRunner().invoke(router_config, [
        "-c", str(lb1_config), "-c", str(CONFIGS / "lab-lb2.yaml"),
        "--peer", ROUTER_V4, "--peer", ROUTER_V6, "--vendor", "bird"])
    assert result.exit_code == 0, result.output
    with Lab("esr") as lab:
        switch = lab.switch("sw")
        router = lab.host("rt")
        lab.connect(router, switch, "eth0", [f"{ROUTER_V4}/24", f"{ROUTER_V6}/64"])
        lb1, lb2 = lab.host("lb1"), lab.host("lb2")
        lab.connect(lb1, switch, "eth0", ["192.0.2.11/24", "2001:db8::11/64"])
        lab.connect(lb2, switch, "eth0", ["192.0.2.12/24", "2001:db8::12/64"])
        with (tmp_path / "lb1.log").open("w") as log:
            lb1.spawn([sys.executable, "-m", "speaker", "run", "-c", str(lb1_config),
                       "--runtime-dir", str(tmp_path / "lb1-run")], stdout=log)
        labkit.start_exabgp(lb2, tmp_path, "lb2",
                            _exabgp_config("lb2", "192.0.2.12", "2001:db8::12"))
        sock = labkit.start_bird(router, tmp_path, result.output)
        protocols = ["edge_lb1_v4", "edge_lb1_v6", "edge_lb2_v4", "edge_lb2_v6"]
        labkit.wait_for(lambda: labkit.bird_established(router, sock, protocols), SETTLE_S,
                        "BIRD sessions with speaker run and the ExaBGP appliance")
        routes = labkit.wait_for(
            lambda: (r := labkit.bird_routes(router, sock)) and all(
                "edge_lb1_v4" in r.get(v, ()) or "edge_lb1_v6" in r.get(v, ())
                for v in VIPS) and r, SETTLE_S, "every VIP from speaker run")
        assert set(routes) == VIPS
        assert routes["203.0.113.10/32"] == {"edge_lb1_v4", "edge_lb2_v4"}
        assert routes["2001:db8:100::10/128"] == {"edge_lb1_v6", "edge_lb2_v6"}
        filtered = sum(labkit.bird_import_stats(router, sock, p)["filtered"]
                       for p in ("edge_lb2_v4", "edge_lb2_v6"))
        assert filtered == len(OUTSIDE)
        assert labkit.bird_import_stats(router, sock, "edge_lb1_v4")["filtered"] == 0
    assert leftover_namespaces("esr") == []
