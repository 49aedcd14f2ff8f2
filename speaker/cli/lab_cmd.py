"""`speaker demo` and `speaker lab up|status|down`: the namespace lab."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import click

from speaker.cli.common import fail

STATE = Path("/run/edge-speaker-lab.json")


def _need_root() -> None:
    if os.geteuid() != 0:
        fail("the lab needs root (network namespaces)", 2)


@click.command()
@click.option("--keep-logs", is_flag=True, help="Keep the lab's files and daemon logs.")
def demo(keep_logs: bool) -> None:
    """Run the appliance in a namespace lab: BGP, health, quorum, reload, SIGTERM."""
    _need_root()
    from speaker.lab.demo import run_demo

    sys.exit(run_demo(keep_logs))


@click.group()
def lab() -> None:
    """The namespace lab: a BIRD router, two appliances, backends and a client."""


@lab.command()
@click.option("--appliances", default=2, show_default=True, help="Appliances (1-9).")
@click.option("--backends", default=3, show_default=True, help="HTTP backends (1-50).")
@click.option("--quorum", default=2, show_default=True, help="Minimum healthy backends.")
def up(appliances: int, backends: int, quorum: int) -> None:
    """Build the lab and keep it running until Ctrl-C (then remove it)."""
    _need_root()
    from speaker.lab.demo import PREFIX
    from speaker.lab.netns import Lab
    from speaker.lab.topology import LabSpec, build_demo, describe, to_json

    try:
        spec = LabSpec(appliances, backends, quorum)
    except ValueError as exc:
        fail(str(exc), 2)

    workdir = Path(tempfile.mkdtemp(prefix="edge-speaker-lab-"))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    with Lab(PREFIX) as the_lab:
        demo_lab = build_demo(the_lab, workdir, spec)
        demo_lab.wait("appliances ready", lambda: all(
            (a.status() or {}).get("ready") for a in demo_lab.appliances))
        STATE.write_text(to_json(describe(demo_lab)))
        click.echo(to_json(describe(demo_lab)))
        click.echo("\nlab is up. Try:\n"
                   f"  speaker status -s {demo_lab.appliances[0].socket}\n"
                   f"  ip netns exec {PREFIX}-r1 birdc -s {demo_lab.router.socket} show route\n"
                   f"  ip netns exec {PREFIX}-client ping 203.0.113.10\n"
                   "Ctrl-C (or `speaker lab down`) removes it.")
        try:
            while not stop["now"]:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            STATE.unlink(missing_ok=True)
    shutil.rmtree(workdir, ignore_errors=True)
    click.echo("lab removed")


@lab.command("status")
def lab_status() -> None:
    """Show the running lab (from `speaker lab up`)."""
    if not STATE.exists():
        fail("no lab is up", 1)
    click.echo(STATE.read_text())


@lab.command()
def down() -> None:
    """Remove a lab left behind: namespaces esd-* and the lab's processes inside them."""
    _need_root()
    import subprocess

    from speaker.lab.demo import PREFIX
    from speaker.lab.netns import leftover_namespaces

    for name in leftover_namespaces(PREFIX):
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "del", name], check=False)
        click.echo(f"removed {name}")
    STATE.unlink(missing_ok=True)
