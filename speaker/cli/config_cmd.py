"""`speaker config check|show`.

Exit codes of `check`: 0 every file is valid (and, with several files, they agree);
1 a file is invalid or the files disagree (every problem on stderr, with its file
and dotted path); 2 a file cannot be read or is not YAML within the limits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from speaker.cli.common import load_or_exit, print_json
from speaker.config import AppConfig, ConfigError, ConfigUnreadableError, load_config
from speaker.config.fleet import fleet_issues
from speaker.config.secrets import redact

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


@click.group()
def config() -> None:
    """Validate and inspect appliance configs."""


def _check_one(path: Path) -> tuple[AppConfig | None, int]:
    try:
        cfg = load_config(path)
    except ConfigUnreadableError as exc:
        click.echo(f"speaker: {exc}", err=True)
        return None, EXIT_UNREADABLE
    except ConfigError as exc:
        click.echo(f"{exc.source}: {len(exc.issues)} error(s):", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        return None, EXIT_INVALID
    click.echo(f"{path}: ok ({len(cfg.services)} services, election {cfg.election.engine}"
               f"{', bgp' if cfg.bgp else ''})")
    return cfg, 0


@config.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate FILES; list every error with its path.

    Several files are the appliances of one pair or fleet: once each is valid, they
    are checked together (names and router ids, VRRP groups and priorities, the BGP
    peer plan). Exit 1 if invalid or inconsistent, 2 if unreadable.
    """
    worst, valid = 0, []
    for path in files:
        cfg, code = _check_one(path)
        worst = max(worst, code)
        if cfg is not None:
            valid.append((str(path), cfg))
    if worst == 0 and len(valid) > 1:
        issues = fleet_issues(valid)
        if issues:
            click.echo(f"{len(valid)} appliances disagree: {len(issues)} error(s):", err=True)
            for issue in issues:
                click.echo(f"  {issue}", err=True)
            worst = EXIT_INVALID
        else:
            click.echo(f"{len(valid)} appliances agree (identity, VRRP groups, BGP peers)")
    sys.exit(worst)


@config.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
@click.option("--show-secrets", is_flag=True,
              help="Print passwords as they are (default: <redacted>).")
def show(file: Path, as_json: bool, show_secrets: bool) -> None:
    """Print the effective config of FILE with every default filled in."""
    cfg = load_or_exit(file)
    data = cfg.model_dump(mode="json")
    if not show_secrets:
        data = redact(data)
    if as_json:
        print_json(data)
    else:
        click.echo(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), nl=False)
