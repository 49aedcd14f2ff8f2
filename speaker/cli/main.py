"""`speaker`: the command group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from speaker.cli.appliance_cmd import appliance
from speaker.cli.config_cmd import config
from speaker.cli.daemon_cmd import drain, reload, run, status, undrain
from speaker.cli.lab_cmd import demo, lab
from speaker.routercfg.cli import router_config
from speaker.supervisor import package_version


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), prog_name="speaker")
def main() -> None:
    """edge-speaker: announce, fail over and forward service VIPs."""


for command in (config, run, status, reload, drain, undrain, router_config, lab, demo,
                appliance):
    main.add_command(command)
