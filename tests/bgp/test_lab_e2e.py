"""End to end through `speaker run`: health checker, reconciler and BGP speaker
together, judged at a real BIRD router (the lab demo topology, prefix esbe).

- ECMP: two appliances announce the VIP; the router has two next hops.
- A backend failure below quorum withdraws the VIP at the router; recovery
  re-announces it.
- SIGTERM: every route is withdrawn at the router before the process exits,
  even with graceful restart negotiated (ExaBGP then closes silently).
- active-backup (VRRP election): the router prefers the leader and moves to the
  backup when the leader's route is withdrawn.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.lab.netns import Lab, leftover_namespaces, require_root
from speaker.lab.topology import VIP, DemoLab, LabSpec, build_demo

pytestmark = [pytest.mark.lab, pytest.mark.slow]
PREFIX = os.environ.get("ESB_LAB_PREFIX", "esb") + "e"
VIP_NET = f"{VIP}/32"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A lab with the esbe prefix, removed afterwards."""
    if not require_root():
        pytest.skip("lab tests need root")
    with Lab(PREFIX) as the_lab:
        yield the_lab
    assert not leftover_namespaces(PREFIX)


def hops(demo: DemoLab) -> list[str]:
    """Next hops BIRD has for the VIP, best path first."""
    return demo.router.routes().get(VIP_NET, [])


def detail(demo: DemoLab) -> str:
    """`show route for VIP all` at the router ('' while it has no route)."""
    return demo.router.ns.run("birdc", "-s", str(demo.router.socket), "show", "route", "for",
                              VIP, "all", check=False).stdout


def rewrite(demo: DemoLab, index: int, change: Any, restart: bool = False) -> None:
    """Edit appliance lb<index>'s YAML; reload it through the API, or restart
    `speaker run` (an election engine is chosen at start)."""
    app = demo.appliances[index - 1]
    cfg = yaml.safe_load(app.config_path.read_text())
    change(cfg)
    app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    if not restart:
        app.api("reload")
        return
    assert app.proc is not None
    app.ns.stop(app.proc)
    app.start(demo.workdir)


def test_ecmp_then_backend_failure_withdraws_and_recovery_reannounces(
        lab: Lab, tmp_path: Path) -> None:
    demo = build_demo(lab, tmp_path, LabSpec(appliances=2, backends=2, quorum=2))
    demo.wait("two next hops (ECMP)", lambda: sorted(hops(demo)) == ["192.0.2.11",
                                                                        "192.0.2.12"], 60)
    demo.stop_backend("be1")  # 1 healthy < quorum 2 on both appliances
    demo.wait("VIP withdrawn at the router", lambda: not hops(demo), 15)
    demo.start_backend("be1")
    demo.wait("VIP back with two next hops", lambda: len(hops(demo)) == 2, 20)


def test_sigterm_withdraws_every_route_before_exit(lab: Lab, tmp_path: Path) -> None:
    demo = build_demo(lab, tmp_path, LabSpec(appliances=1, backends=1, quorum=1))
    demo.wait("VIP at the router", lambda: hops(demo) == ["192.0.2.11"], 60)

    def graceful(cfg: dict[str, Any]) -> None:
        cfg["bgp"]["peers"][0]["graceful_restart"] = {"enabled": True, "restart_time": 120}

    rewrite(demo, 1, graceful)  # ExaBGP restarts with GR; the router keeps the route
    demo.wait("session re-established with GR",
              lambda: demo.router.session_states().get("lb1") == "Established"
              and "Graceful restart" in demo.router.birdc("show", "protocols", "all", "lb1")
              and hops(demo) == ["192.0.2.11"], 30)
    app = demo.appliances[0]
    assert app.proc is not None
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(30) == 0
    assert hops(demo) == [], "with GR a route left behind would stay for 120 s"


def test_active_backup_prefers_leader_and_moves_to_backup(lab: Lab, tmp_path: Path) -> None:
    demo = build_demo(lab, tmp_path, LabSpec(appliances=2, backends=1, quorum=1))
    demo.wait("two next hops", lambda: len(hops(demo)) == 2, 60)

    def active_backup(priority: int) -> Any:
        def change(cfg: dict[str, Any]) -> None:
            cfg["bgp"]["mode"] = "active-backup"
            cfg["election"] = {"engine": "vrrp", "vrrp": {"interface": "eth0"},
                               "groups": [{"name": "default", "vrid": 51,
                                           "priority": priority}]}
        return change

    rewrite(demo, 1, active_backup(200), restart=True)
    rewrite(demo, 2, active_backup(100), restart=True)
    # The backup (lb2, VRRP priority 100) announces with 3 prepends (4 x 65010) and MED +100.
    demo.wait("backup route with prepend and MED at the router",
              lambda: "65010 65010 65010 65010" in detail(demo) and len(hops(demo)) == 2, 30)
    assert "BGP.med: 100" in detail(demo)
    assert hops(demo)[0] == "192.0.2.11", "the router prefers the leader"
    app = demo.appliances[0]
    assert app.proc is not None
    app.proc.send_signal(signal.SIGTERM)  # planned stop: lb1 withdraws its route
    assert app.proc.wait(30) == 0
    demo.wait("router moved to the backup lb2", lambda: hops(demo)[:1] == ["192.0.2.12"], 15)
