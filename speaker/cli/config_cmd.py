"""`speaker config check|show`."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from speaker.cli.common import load_or_exit, print_json


@click.group()
def config() -> None:
    """Validate and inspect appliance configs."""


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate FILES; list every error with its path. Exit 1 if invalid, 2 if unreadable."""
    for path in files:
        cfg = load_or_exit(path)
        click.echo(f"{path}: ok ({len(cfg.services)} services, election {cfg.election.engine}"
                   f"{', bgp' if cfg.bgp else ''})")


@config.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
def show(file: Path, as_json: bool) -> None:
    """Print the effective config of FILE with every default filled in."""
    cfg = load_or_exit(file)
    data = cfg.model_dump(mode="json")
    if as_json:
        print_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), nl=False)
