"""`speaker config import-keepalived`: write an edge-speaker config from keepalived.conf."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from speaker.config import ConfigError, parse_text
from speaker.migrate.kaconf import KaSyntaxError, parse_file
from speaker.migrate.keepalived import import_keepalived


@click.command("import-keepalived")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the config here (default: standard output).")
@click.option("--name", help="node.name (default: global_defs router_id).")
@click.option("--router-id", help="node.router_id (default: an IPv4 unicast_src_ip).")
def import_keepalived_cmd(file: Path, output: Path | None, name: str | None,
                          router_id: str | None) -> None:
    """Translate keepalived FILE; list what could not be carried over, with its line.

    Exit 0 when the result is a valid config (the list goes to standard error and into
    the file as comments), 1 when it is not (fix the listed items), 2 when FILE cannot
    be read as keepalived.conf."""
    try:
        tree = parse_file(file)
    except (KaSyntaxError, OSError) as exc:
        click.echo(f"speaker: {exc}", err=True)
        sys.exit(2)
    result = import_keepalived(tree, name=name, router_id=router_id)
    text = yaml.safe_dump(result.config, sort_keys=False, default_flow_style=False)
    header = [f"# imported from {file} by `speaker config import-keepalived`"]
    header += [f"# NOT CARRIED OVER {f.where}: {f.message}" for f in result.findings]
    for finding in result.findings:
        click.echo(f"{finding.where}: {finding.message}", err=True)
    body = "\n".join(header) + "\n" + text
    try:
        parse_text(body, str(output or "<imported>"))
    except ConfigError as exc:
        for issue in exc.issues:
            click.echo(f"imported config: {issue}", err=True)
        valid = False
    else:
        valid = True
    if output is None:
        click.echo(body, nl=False)
    else:
        output.write_text(body)
    sys.exit(0 if valid else 1)
