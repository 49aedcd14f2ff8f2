"""`speaker run` and the commands that talk to a running daemon.

Exit codes of the commands that talk to the daemon: 0 ok (`status`: healthy),
1 `status` degraded/unhealthy or `reload` rejected, 2 the daemon refused the
request (e.g. no such service or backend), 3 the daemon cannot be reached.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from speaker.api.client import DaemonUnreachableError, RequestRefusedError, request
from speaker.cli.common import CONFIG_OPTION, fail, load_or_exit, print_json
from speaker.cli.render import render_status

SOCKET_OPTION = click.option("-s", "--socket", "socket_path", type=click.Path(path_type=Path),
                             default=None, help="API socket (default: from the config, or "
                             "/run/edge-speaker/api.sock).")


def _socket(socket_path: Path | None, config_path: Path | None) -> Path:
    if socket_path is not None:
        return socket_path
    if config_path is not None and config_path.exists():
        return load_or_exit(config_path).api.socket
    return Path("/run/edge-speaker/api.sock")


def call_daemon(socket_path: Path | None, config_path: Path | None, command: str,
                **args: Any) -> Any:
    """Send one API command; exit 3 if the daemon is unreachable, 2 if it refuses."""
    try:
        return request(_socket(socket_path, config_path), command, **args)
    except DaemonUnreachableError as exc:
        fail(str(exc), 3)
    except RequestRefusedError as exc:
        fail(f"{command} refused by the daemon: {exc}", 2)


@click.command()
@CONFIG_OPTION
@click.option("--runtime-dir", type=click.Path(path_type=Path), default=None,
              help="Where generated files (ExaBGP config, sockets) go. Default /run/edge-speaker.")
def run(config_path: Path, runtime_dir: Path | None) -> None:
    """Run the appliance (foreground; systemd Type=notify)."""
    from speaker.daemon import run_daemon

    sys.exit(run_daemon(config_path, load_or_exit(config_path), runtime_dir))


def _image() -> dict[str, Any] | None:
    """On the appliance image: its running and staged versions and slots (read here, by
    the CLI: the sandboxed daemon cannot read the ESP)."""
    from speaker.appliance.update import ensure_esp, is_appliance, report

    if not is_appliance():
        return None
    try:
        ensure_esp()
        return report()
    except OSError as exc:
        return {"error": f"cannot read the slots: {exc}"}


def _status_doc(socket_path: Path | None, config_path: Path | None) -> dict[str, Any]:
    doc: dict[str, Any] = call_daemon(socket_path, config_path, "status")
    image = _image()
    if image is not None:
        doc["image"] = image
    return doc


def _status_text(doc: dict[str, Any], as_json: bool, no_backends: bool) -> str:
    if as_json:
        return json.dumps(doc, indent=2, sort_keys=True, default=str)
    text = render_status(doc, backends=not no_backends)
    if doc.get("image") is not None:
        from speaker.cli.update_cmd import render_image

        text += "\n\n" + "\n".join(render_image(doc["image"]))
    return text


@click.command()
@SOCKET_OPTION
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.option("--no-backends", is_flag=True, help="Leave out the per-backend table.")
@click.option("-w", "--watch", "watch", type=click.FloatRange(min=0.2), default=None,
              is_flag=False, flag_value=2.0, metavar="SECONDS",
              help="Refresh every SECONDS (2 if not given) until Ctrl-C.")
def status(socket_path: Path | None, config_path: Path | None, as_json: bool,
           no_backends: bool, watch: float | None) -> None:
    """Show VIPs, backends, BGP sessions and election state of the running daemon.

    Exits 0 when healthy, 1 when degraded or unhealthy, 3 when the daemon cannot be
    reached (with --watch: 0 on Ctrl-C)."""
    if watch is not None:
        try:
            while True:
                text = _status_text(_status_doc(socket_path, config_path), as_json,
                                    no_backends)
                click.clear()
                click.echo(f"every {watch:g} s, {time.strftime('%H:%M:%S')} "
                           f"(Ctrl-C to stop)\n{text}")
                time.sleep(watch)
        except KeyboardInterrupt:
            sys.exit(0)
    doc = _status_doc(socket_path, config_path)
    click.echo(_status_text(doc, as_json, no_backends))
    if doc.get("health", {}).get("state", "healthy") != "healthy":
        sys.exit(1)


@click.command()
@SOCKET_OPTION
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
def reload(socket_path: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Re-read the config file; a bad one (or one that needs a restart) is rejected and
    the running config kept. Prints one line per change; exits 1 if rejected."""
    result = call_daemon(socket_path, config_path, "reload")
    if as_json:
        print_json(result)
    elif result["ok"]:
        changes = result.get("changes") or []
        click.echo("reloaded" + ("" if changes else ": nothing changed"))
        for line in changes:
            click.echo(f"  {line}")
    else:
        click.echo("reload REJECTED; the running config is kept:", err=True)
        for error in result["errors"]:
            click.echo(f"  {error}", err=True)
    if not result["ok"]:
        sys.exit(1)


def _drain_command(on: bool) -> click.Command:
    verb = "drain" if on else "undrain"

    @click.command(verb)
    @SOCKET_OPTION
    @click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None)
    @click.option("--service", default=None, help="Only this service.")
    @click.option("--backend", default=None, help="Only this backend (label) of --service.")
    @click.option("--json", "as_json", is_flag=True)
    def command(socket_path: Path | None, config_path: Path | None, service: str | None,
                backend: str | None, as_json: bool) -> None:
        args = {k: v for k, v in (("service", service), ("backend", backend)) if v is not None}
        result = call_daemon(socket_path, config_path, verb, **args)
        if as_json:
            print_json(result)
        else:
            click.echo(f"{verb}ed: appliance={result['appliance']} services={result['services']}"
                       f" backends={result['backends']}")

    command.help = ("Planned maintenance: hand over the appliance (or stop new connections to "
                    "a service/backend, then remove it after its drain_time)." if on else
                    "Undo a drain.")
    return command


drain = _drain_command(True)
undrain = _drain_command(False)
