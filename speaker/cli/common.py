"""Helpers shared by CLI commands: load a config or exit with a clear message."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from speaker.config import AppConfig, ConfigError, ConfigUnreadableError, load_config


def fail(message: str, code: int) -> NoReturn:
    """Print to stderr and exit."""
    click.echo(f"speaker: {message}", err=True)
    sys.exit(code)


def load_or_exit(path: Path) -> AppConfig:
    """Load a config; exit 2 if unreadable, 1 listing every error if invalid."""
    try:
        return load_config(path)
    except ConfigUnreadableError as exc:
        fail(str(exc), 2)
    except ConfigError as exc:
        click.echo(f"{exc.source}: {len(exc.issues)} error(s):", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        sys.exit(1)


def print_json(data: Any) -> None:
    """Stable, indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


CONFIG_OPTION = click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
                             default=Path("/etc/edge-speaker/speaker.yaml"), show_default=True,
                             help="Appliance config file.")
