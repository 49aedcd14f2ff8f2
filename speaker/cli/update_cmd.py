"""`speaker update status|apply|health-gate`: A/B image updates of the appliance.

Exit codes of `apply`: 0 written (the next boot tries it), 1 the artifact was refused
(signature, checksum, format, size: the message says which), 2 the appliance refused
the update (e.g. its running slot is still on trial).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from speaker.appliance.artifact import ArtifactError, describe
from speaker.appliance.gate import wait_for_health
from speaker.appliance.signing import SIGNERS, SshKeygenVerifier
from speaker.appliance.slots import UpdateRefusedError
from speaker.appliance.update import (
    DEFAULT_TRIES,
    ESP,
    BlockSlots,
    apply_update,
    ensure_esp,
    open_source,
    report,
)
from speaker.cli.common import fail, print_json

ESP_OPTION = click.option("--esp", type=click.Path(path_type=Path), default=ESP,
                          show_default=True, help="Where the ESP is mounted.")


def render_image(doc: dict[str, Any]) -> list[str]:
    """Lines for the image section of `speaker status` and `speaker update status`."""
    run = doc["running"]
    lines = [f"image {run['version']} running from slot {run['slot'] or '?'}"]
    for slot, info in sorted(doc["slots"].items()):
        tries = (f", {info['tries_left']} tries left" if info["state"] == "trial" else "")
        lines.append(f"  slot {slot}: {info['version'] or '-'} {info['state']}{tries}"
                     f"{' (running)' if info['running'] else ''}")
    nxt = doc["next_boot"]
    lines.append(f"  next boot: slot {nxt['slot']} ({nxt['version']})" if nxt
                 else "  next boot: no entry found")
    if doc.get("staged"):
        lines.append(f"  staged: {doc['staged']['version']} in slot {doc['staged']['slot']}")
    if doc.get("error"):
        lines.append(f"  error: {doc['error']}")
    return lines


@click.group()
def update() -> None:
    """A/B image updates: apply to the inactive slot, boot-count, roll back by itself."""


@update.command("status")
@ESP_OPTION
@click.option("--json", "as_json", is_flag=True)
def status_cmd(esp: Path, as_json: bool) -> None:
    """Running and staged versions and slots."""
    ensure_esp(esp)
    doc = report(esp)
    if as_json:
        print_json(doc)
    else:
        click.echo("\n".join(render_image(doc)))


@update.command()
@click.argument("source")
@ESP_OPTION
@click.option("--tries", type=int, default=DEFAULT_TRIES, show_default=True,
              help="Boots the new slot gets to pass the health gate before it rolls back.")
@click.option("--signers", type=click.Path(path_type=Path), default=SIGNERS,
              show_default=True, help="Trusted update keys (OpenSSH allowed-signers).")
@click.option("--force", is_flag=True, help="Apply even while the running slot is on trial.")
@click.option("--reboot", is_flag=True, help="Reboot into the new slot when written.")
@click.option("--json", "as_json", is_flag=True)
def apply(source: str, esp: Path, tries: int, signers: Path, force: bool, reboot: bool,
          as_json: bool) -> None:
    """Write SOURCE (a file, `-` for stdin, or an http(s) URL) to the inactive slot and
    make the next boot try it."""
    cmdline = Path("/proc/cmdline").read_text()
    ensure_esp(esp)
    try:
        stream = open_source(source)
        with stream:
            done = apply_update(stream, esp=esp, cmdline=cmdline, devices=BlockSlots(),
                                verifier=SshKeygenVerifier(signers), tries=tries,
                                force=force)
    except UpdateRefusedError as exc:
        fail(f"update refused: {exc}", 2)
    except ArtifactError as exc:
        fail(f"update artifact refused: {exc} (the running slot is untouched)", 1)
    result = {"slot": done.plan.slot, "entry": done.plan.entry, "tries": tries,
              "seconds": round(done.seconds, 1), **describe(done.manifest)}
    if as_json:
        print_json(result)
    else:
        click.echo(f"wrote {done.manifest.version} to slot {done.plan.slot} in "
                   f"{done.seconds:.1f} s; the next boot tries it ({tries} "
                   f"{'try' if tries == 1 else 'tries'}), entry {done.plan.entry}")
    if reboot:
        subprocess.run(["systemctl", "reboot"], check=False)


class SystemdProbe:
    """edge-speaker.service's state from systemd, the status from the daemon's API."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def unit_state(self) -> str:
        out = subprocess.run(["systemctl", "show", "-p", "ActiveState", "--value",
                              "edge-speaker.service"], capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() or "unknown"

    def status(self) -> dict[str, Any] | None:
        from speaker.api.client import DaemonUnreachableError, RequestRefusedError, request

        try:
            doc = request(self.socket, "status")
        except (DaemonUnreachableError, RequestRefusedError, OSError):
            return None
        return doc if isinstance(doc, dict) else None


@update.command("health-gate")
@click.option("--timeout", type=float, default=600.0, show_default=True)
@click.option("--socket", "socket_path", type=click.Path(path_type=Path),
              default=Path("/run/edge-speaker/api.sock"), show_default=True)
def health_gate(timeout: float, socket_path: Path) -> None:
    """Wait until edge-speaker is READY and announcing (exit 0) or give up (exit 1).

    Run by edge-speaker-health.service on counted boots only; its failure reboots the
    appliance, and systemd-boot then goes back to the previous slot."""
    def say(text: str) -> None:
        click.echo(f"<6>edge-speaker-health: {text}")

    result = wait_for_health(SystemdProbe(socket_path), timeout, say=say)
    ensure_esp()  # systemd-bless-boot (next) renames the entry on it
    if result.passed:
        say(f"passed after {result.waited:.0f} s: {result.reason}; this boot is good")
        return
    click.echo(f"<3>edge-speaker-health: FAILED after {result.waited:.0f} s: {result.reason}; "
               "rebooting to the previous slot")
    sys.exit(1)
