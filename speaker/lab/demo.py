"""`speaker demo`: the appliance doing its job in the namespace lab, step by step.

Each step checks what an operator would check (BIRD's table, the client's
ping, `speaker status`, the metrics) and prints what it saw; the first step
that fails ends the demo with exit code 1. The lab is removed at the end,
whatever happened.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from speaker.lab.netns import Lab
from speaker.lab.topology import VIP, DemoLab, build_demo

PREFIX = "esd"


def _ok(message: str) -> None:
    click.echo(click.style("  ok  ", fg="green") + message)


def _step(title: str) -> None:
    click.echo(click.style(f"\n== {title}", bold=True))


def _ready(demo: DemoLab) -> None:
    _step("start BIRD, 3 HTTP backends and two appliances running `speaker run`")
    for app in demo.appliances:
        took = demo.wait(f"{app.name} READY", lambda a=app: (a.status() or {}).get("ready"))
        _ok(f"{app.name} reached READY in {took:.2f}s (first reconcile done)")
    took = demo.wait("two next hops at BIRD", lambda: len(demo.vip_next_hops()) == 2)
    _ok(f"BIRD has {VIP}/32 via {', '.join(demo.vip_next_hops())} (ECMP) after {took:.2f}s")
    demo.client.run("ping", "-c", "3", "-i", "0.2", "-W", "1", VIP)
    _ok(f"client pings {VIP} through the router")


def _status_and_metrics(demo: DemoLab) -> None:
    _step("`speaker status` and Prometheus metrics of lb1")
    from speaker.cli.render import render_status

    lb1 = demo.appliances[0]
    click.echo(render_status(lb1.status() or {}))
    text = lb1.metrics()
    wanted = ("speaker_build_info", "speaker_config_last_reload_successful",
              "speaker_vip_announced", "speaker_bgp_session_up", "speaker_backend_up")
    shown = [line for line in text.splitlines()
             if line.startswith(wanted) and not line.startswith("#")]
    for line in shown:
        click.echo("    " + line)
    if "speaker_config_last_reload_successful 1.0" not in text:
        raise AssertionError("metrics do not report a successful config load")
    if "_created" in text:
        raise AssertionError("metrics expose _created series")
    _ok("metrics served on 127.0.0.1:9469 inside the appliance namespace")


def _quorum(demo: DemoLab) -> None:
    _step("backends fail: below quorum (2 of 3) the VIP is withdrawn, then comes back")
    demo.stop_backend("be1")
    demo.stop_backend("be2")
    start = time.monotonic()
    took = demo.wait("VIP withdrawn at BIRD", lambda: not demo.vip_next_hops())
    _ok(f"2 backends stopped -> VIP gone from BIRD after {took:.2f}s "
        "(health interval 250 ms, fall 2)")
    doc = demo.appliances[0].status() or {}
    reason = doc["vips"][0]["bgp"]["reason"]
    if reason != "below_quorum":
        raise AssertionError(f"expected reason below_quorum, status says {reason}")
    _ok(f"lb1 status: bgp reason {reason}, healthy "
        f"{doc['vips'][0]['healthy']}/{doc['vips'][0]['total']}")
    demo.start_backend("be1")
    demo.start_backend("be2")
    took = demo.wait("VIP back at BIRD", lambda: len(demo.vip_next_hops()) == 2)
    _ok(f"backends restarted -> VIP back via both appliances after {took:.2f}s "
        f"(outage {time.monotonic() - start:.2f}s in total)")


def _bad_reload(demo: DemoLab) -> None:
    _step("a bad config is rejected on reload; the appliance keeps running the old one")
    lb1 = demo.appliances[0]
    good = lb1.config_path.read_text()
    lb1.config_path.write_text(good.replace("scheduler: wlc", "scheduler: random"))
    try:
        result = lb1.api("reload")
    finally:
        lb1.config_path.write_text(good)
    if result["ok"]:
        raise AssertionError("a bad config was accepted")
    _ok(f"reload rejected: {result['errors'][0]}")
    if "speaker_config_last_reload_successful 0.0" not in lb1.metrics():
        raise AssertionError("metric does not show the rejected reload")
    _ok("speaker_config_last_reload_successful = 0; VIP still announced: "
        f"{', '.join(demo.vip_next_hops())}")
    if len(demo.vip_next_hops()) != 2:
        raise AssertionError("the rejected reload disturbed the announcements")
    result = lb1.api("reload")
    _ok(f"good config reloaded again: ok={result['ok']}")


def _sigterm(demo: DemoLab) -> None:
    _step("SIGTERM: lb1 withdraws its routes, then exits 0")
    lb1 = demo.appliances[0]
    assert lb1.proc is not None  # noqa: S101 - started by build_demo
    lb1.proc.send_signal(signal.SIGTERM)
    code = lb1.proc.wait(30)
    hops = demo.vip_next_hops()
    if code != 0:
        raise AssertionError(f"lb1 exited {code}")
    if "192.0.2.11" in hops:
        raise AssertionError("lb1's route is still at BIRD after it exited")
    _ok(f"lb1 exited 0; BIRD now has {VIP}/32 only via {', '.join(hops)}")
    demo.client.run("ping", "-c", "2", "-i", "0.2", "-W", "1", VIP)
    _ok("client still reaches the VIP through lb2")


STEPS: list[Callable[[DemoLab], None]] = [_ready, _status_and_metrics, _quorum, _bad_reload,
                                          _sigterm]


def run_demo(keep_logs: bool = False) -> int:
    """Build the lab, run every step, tear it down. 0 when every step passed."""
    workdir = Path(tempfile.mkdtemp(prefix="edge-speaker-demo-"))
    click.echo(f"edge-speaker demo (lab files and logs in {workdir})")
    with Lab(PREFIX) as lab:
        try:
            demo = build_demo(lab, workdir)
            for step in STEPS:
                step(demo)
        except (AssertionError, TimeoutError, RuntimeError) as exc:
            click.echo(click.style(f"  FAILED: {exc}", fg="red"), err=True)
            for log in sorted(workdir.glob("lb*.log")):
                click.echo(f"--- last lines of {log}", err=True)
                for line in log.read_text(errors="replace").splitlines()[-15:]:
                    click.echo("    " + line, err=True)
            return 1
    click.echo(click.style("\ndemo passed; lab removed", fg="green", bold=True))
    if not keep_logs:
        for path in sorted(workdir.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        workdir.rmdir()
    return 0
