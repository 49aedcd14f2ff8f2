"""`speaker plan` and `speaker explain`: ask the running daemon, change nothing.

Exit codes: `plan` 0 when the reload would be accepted, 1 when it would be rejected
(invalid, or a field needs a restart); `explain` 0 when the VIP is announced here, 1
when it is not; both 2 when the daemon refused the request, 3 when it is unreachable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from speaker.cli.common import print_json
from speaker.cli.daemon_cmd import SOCKET_OPTION, call_daemon
from speaker.config import ConfigError, ConfigUnreadableError, load_config

DEFAULT_SOCKET = Path("/run/edge-speaker/api.sock")


def _socket_for(socket_path: Path | None, candidate: Path | None) -> Path:
    """The socket named, else the candidate's (an invalid candidate: the default)."""
    if socket_path is not None:
        return socket_path
    if candidate is not None:
        try:
            return load_config(candidate).api.socket
        except (ConfigError, ConfigUnreadableError):
            pass
    return DEFAULT_SOCKET


def render_plan(doc: dict[str, Any]) -> str:
    """The plan as an operator reads it."""
    head = "would be ACCEPTED" if doc["accepted"] else f"would be REJECTED ({doc['reason']})"
    lines = [f"reload to {doc['path']} {head}"]
    lines += [f"  {e}" for e in doc.get("errors", [])]
    for title, key in (("config", "config"), ("parts", "parts"), ("announcements", "vips"),
                       ("notes", "notes")):
        items = doc.get(key) or []
        if items:
            lines.append(f"{title}:")
            lines += [f"  {item}" for item in items]
    ops = doc.get("operations")
    if ops is not None:
        counts = ", ".join(f"{n} {p}" for p, n in doc.get("counts", {}).items())
        lines.append(f"operations of the first pass ({counts or 'none'}):")
        lines += [f"  {op['action']:<16} {op['target']}  ({op['reason']})" for op in ops]
    return "\n".join(lines)


@click.command()
@SOCKET_OPTION
@click.option("-c", "--config", "candidate", type=click.Path(path_type=Path), required=True,
              help="The candidate config (not applied).")
@click.option("--json", "as_json", is_flag=True)
def plan(socket_path: Path | None, candidate: Path, as_json: bool) -> None:
    """What a reload to the candidate config would change on the running appliance:
    VIPs gained, lost or moved, IPVS services and weights, peers restarted, fields
    that need a restart. Nothing is applied."""
    doc = call_daemon(_socket_for(socket_path, candidate), None, "plan",
                path=str(candidate.resolve()))
    if as_json:
        print_json(doc)
    else:
        click.echo(render_plan(doc))
    if not doc["accepted"]:
        sys.exit(1)


def render_explain(doc: dict[str, Any]) -> str:
    """The chain per service of the VIP."""
    lines = []
    for svc in doc["services"]:
        lines.append(f"{doc['vip']} (service {svc['service']}): {svc['verdict']}")
        lines += [f"  [{'ok' if s['ok'] else '--'}] {s['check']:<14} {s['detail']}"
                  for s in svc["steps"]]
    return "\n".join(lines)


@click.command()
@SOCKET_OPTION
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.argument("vip")
def explain(socket_path: Path | None, config_path: Path | None, as_json: bool, vip: str) -> None:
    """Why VIP is, or is not, announced here: config, backends, quorum, drains,
    appliance health, election, BGP sessions, L2 ownership, IPVS and DNS."""
    doc = call_daemon(socket_path, config_path, "explain", vip=vip)
    if as_json:
        print_json(doc)
    else:
        click.echo(render_explain(doc))
    if not all(s.get("announced") for s in doc["services"]):
        sys.exit(1)
