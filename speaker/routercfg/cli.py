"""`speaker router-config`: write the router side of the appliances' BGP peerings.

Exit codes: 0 written; 1 a config is invalid or cannot describe a router
(every problem on stderr, one a line); 2 a file cannot be read or written.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from importlib.metadata import PackageNotFoundError, version
from ipaddress import ip_address
from pathlib import Path

import click

from speaker.config import AppConfig, ConfigError, ConfigUnreadableError, load_config
from speaker.routercfg.build import BuildOptions, RouterConfigError, build_model
from speaker.routercfg.model import IPAddress
from speaker.routercfg.render import VENDORS, render

EXIT_INVALID = 1
EXIT_UNREADABLE = 2


def speaker_version() -> str:
    """The installed edge-speaker version (named in every generated header)."""
    try:
        return version("edge-speaker")
    except PackageNotFoundError:
        return "unknown"


def write_secret_file(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only (0600): router configs hold
    TCP-MD5 keys. An existing file is truncated and narrowed to 0600 as well."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)
        out.write(text)


def _fail(code: int, lines: list[str]) -> None:
    for line in lines:
        click.echo(line, err=True)
    sys.exit(code)


def _load(paths: tuple[str, ...]) -> list[tuple[str, AppConfig]]:
    configs: list[tuple[str, AppConfig]] = []
    invalid: list[str] = []
    for path in paths:
        try:
            configs.append((path, load_config(path)))
        except ConfigUnreadableError as exc:
            _fail(EXIT_UNREADABLE, [f"error: {exc}"])
        except ConfigError as exc:
            invalid.append(f"{exc.source}: invalid config:")
            invalid += [f"  {issue}" for issue in exc.issues]
    if invalid:
        _fail(EXIT_INVALID, invalid)
    return configs


def _peers(values: tuple[str, ...]) -> tuple[IPAddress, ...]:
    peers = []
    for value in values:
        try:
            peers.append(ip_address(value))
        except ValueError:
            _fail(EXIT_INVALID, [f"error: --peer {value!r} is not an IP address"])
    return tuple(peers)


def _router_config(config_paths: tuple[str, ...], vendor: str | None,
                   appliances: tuple[str, ...], peers: tuple[str, ...], output: str | None,
                   as_json: bool, no_secrets: bool, default_route: bool) -> None:
    """Write the router side of the BGP peerings with the appliances.

    Give every appliance config of the site (-c, once per appliance); the
    output holds, per router, one neighbor per appliance, an import filter that
    accepts only the VIP pools at /32 and /128, max-prefix, ECMP, TCP-MD5,
    timers, BFD and graceful restart as the appliances configure them.
    """
    if vendor is None and not as_json:
        _fail(EXIT_INVALID, ["error: give --vendor (frr, bird, gobgp, junos, eos, iosxr) "
                             "or --json"])
    options = BuildOptions(appliances=tuple(appliances), peers=_peers(peers),
                           redact_passwords=no_secrets, export_default=default_route)
    configs = _load(config_paths)
    try:
        model = build_model(configs, options, speaker_version())
    except RouterConfigError as exc:
        _fail(EXIT_INVALID, [f"error: {issue}" for issue in exc.issues])
    if as_json:
        text = json.dumps(model.to_json(), indent=2, sort_keys=True) + "\n"
    else:
        assert vendor is not None  # noqa: S101 - checked above; narrows for mypy
        text = render(model, vendor)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_secret_file(Path(output), text)
    except OSError as exc:
        _fail(EXIT_UNREADABLE, [f"error: cannot write {output}: {exc.strerror or exc}"])


router_config = click.command("router-config")(
    click.option("-c", "--config", "config_paths", multiple=True, required=True,
                 metavar="APPLIANCE.yaml",
                 help="An appliance config; repeat once per appliance of the site.")(
    click.option("--vendor", type=click.Choice(VENDORS),
                 help="Router software to write the config for.")(
    click.option("--appliance", "appliances", multiple=True, metavar="NAME",
                 help="Only the appliance with this node.name (repeatable).")(
    click.option("--peer", "peers", multiple=True, metavar="ADDRESS",
                 help="Only the router at this address (repeat for a dual-stack router: "
                      "its sessions merge into one config).")(
    click.option("-o", "--output", metavar="FILE", help="Write here instead of stdout.")(
    click.option("--json", "as_json", is_flag=True,
                 help="Print the vendor-neutral model (neighbors, prefixes, policy).")(
    click.option("--no-secrets", is_flag=True,
                 help="Write a placeholder instead of each TCP-MD5 key.")(
    click.option("--default-route", is_flag=True,
                 help="Send the appliances a default route (otherwise nothing).")(
        _router_config)))))))))
"""The click command; the `speaker` group registers it as `speaker router-config`."""
