"""`speaker appliance boot|check|render-network`: the config medium of the image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from speaker.appliance.medium import (
    LABEL,
    MediumReport,
    activate_network,
    apply_medium,
    check_files,
    find_device,
    pending_renames,
    read_device,
    read_dir,
)
from speaker.appliance.network import parse_network, render
from speaker.config.load import ConfigError, ConfigUnreadableError

STATE = Path("/var/lib/edge-speaker-config")
"""Root-owned (sshd checks the owner of authorized_keys), apart from the daemon's state."""


def _say(priority: int, text: str) -> None:
    """One line for journald (``<N>`` is the syslog priority) and the console."""
    click.echo(f"<{priority}>edge-speaker-config: {text}")


def _report(report: MediumReport) -> None:
    for error in report.errors:
        _say(3, f"error: {error}")
    for note in report.notes:
        _say(3 if report.errors else 5, note)


def _rename_nics(state: Path) -> None:
    """Give the NICs their network.yaml names. udev named them before the .link files
    existed (those serve NICs plugged in later); networkd has not started yet, so the
    links are down and can be renamed directly."""
    for current, wanted in pending_renames(state).items():
        for argv in (["ip", "link", "set", "dev", current, "down"],
                     ["ip", "link", "set", "dev", current, "name", wanted]):
            proc = subprocess.run(argv, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                _say(3, f"error: cannot rename {current} to {wanted}: {proc.stderr.strip()}")
                break
        else:
            _say(6, f"interface {current} is now {wanted}")


def _ssh(state: Path) -> None:
    keys = state / "authorized_keys"
    if not keys.exists() or not keys.read_text().strip():
        _say(6, "ssh stays off (no authorized_keys on the config medium)")
        return
    hostkey = state / "ssh" / "ssh_host_ed25519_key"
    if not hostkey.exists():
        hostkey.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                       check=True)
    subprocess.run(["systemctl", "start", "--no-block", "ssh.service"], check=False)
    _say(5, "ssh enabled for the keys in authorized_keys")


@click.group()
def appliance() -> None:
    """The appliance image: config medium and host networking."""


@appliance.command()
@click.option("--label", default=LABEL, show_default=True)
@click.option("--state-dir", type=click.Path(path_type=Path), default=STATE, show_default=True)
@click.option("--network-dir", type=click.Path(path_type=Path),
              default=Path("/run/systemd/network"), show_default=True)
@click.option("--wait", type=float, default=10.0, show_default=True,
              help="Seconds to wait for the medium to appear.")
def boot(label: str, state_dir: Path, network_dir: Path, wait: float) -> None:
    """At boot: apply the medium (if good), then activate the last good config."""
    dev = find_device(label, wait)
    files = read_device(dev) if dev is not None else None
    report = apply_medium(state_dir, files)
    _report(report)
    try:
        written = activate_network(state_dir, network_dir)
    except (ConfigError, ConfigUnreadableError) as exc:  # cannot happen for a checked file
        _say(3, f"error: network.yaml: {exc}")
        written = []
    if written:
        _say(6, f"networkd files: {', '.join(written)}")
        _rename_nics(state_dir)
    _ssh(state_dir)
    if not (state_dir / "speaker.yaml").exists():
        _say(3, "no speaker config yet: write speaker.yaml to a medium labelled "
                f"{label} and reboot")


@appliance.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False, exists=True))
def check(directory: Path) -> None:
    """Check a config medium (its mount point or a copy) as the appliance will."""
    files = read_dir(directory)
    errors = check_files(files)
    for error in errors:
        click.echo(error, err=True)
    if errors:
        sys.exit(1)
    click.echo(f"{directory}: ok ({', '.join(sorted(files))})")


@appliance.command("render-network")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
def render_network(file: Path) -> None:
    """Print the systemd-networkd files a network.yaml becomes."""
    try:
        cfg = parse_network(file.read_text(encoding="utf-8"), str(file))
    except ConfigUnreadableError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(f"{file}: {issue}", err=True)
        sys.exit(1)
    for name, text in render(cfg).items():
        click.echo(f"# --- {name}\n{text}")
