"""`speaker`: the command group; each subcommand lives in its own module."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import click

from speaker.cli.appliance_cmd import appliance
from speaker.cli.config_cmd import config
from speaker.cli.daemon_cmd import drain, reload, run, status, undrain
from speaker.cli.docs_cmd import completion, man
from speaker.cli.inspect_cmd import explain, plan
from speaker.cli.lab_cmd import demo, lab
from speaker.cli.migrate_cmd import import_keepalived_cmd
from speaker.cli.probe_cmd import probe
from speaker.cli.update_cmd import update
from speaker.routercfg.cli import router_config
from speaker.supervisor import package_version


def exabgp_version() -> str:
    """The installed ExaBGP distribution's version (no subprocess: `--version` is fast)."""
    try:
        return version("exabgp")
    except PackageNotFoundError:
        return "not installed"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), prog_name="speaker",
                      message=f"%(prog)s, version %(version)s (ExaBGP {exabgp_version()})")
def main() -> None:
    """edge-speaker: announce, fail over and forward service VIPs."""


config.add_command(import_keepalived_cmd)
for command in (config, run, status, reload, drain, undrain, router_config, lab, demo,
                completion, man, appliance, plan, explain, probe, update):
    main.add_command(command)
