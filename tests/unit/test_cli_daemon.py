"""`speaker status|reload|drain` exit codes against a daemon (supervisor with fakes)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from speaker.api.server import ApiServer
from speaker.cli.main import main
from speaker.config import load_config
from speaker.daemon import STATUS_CACHE_S, register_handlers
from speaker.sdnotify import Notifier
from speaker.supervisor import Supervisor
from tests.unit.test_reload_parts import ARP, BASE, Builder


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, Path, Supervisor]]:
    cfg = tmp_path / "speaker.yaml"
    sock = tmp_path / "api.sock"
    cfg.write_text(yaml.safe_dump({**BASE, "api": {"socket": str(sock)}}))
    sup = Supervisor(cfg, load_config(cfg), build_part=Builder(), notifier=Notifier(""))
    api = ApiServer(sock)
    register_handlers(api, sup)
    loop = asyncio.new_event_loop()
    done = threading.Event()

    async def main_task() -> None:
        runner = asyncio.create_task(sup.run(extra=[api.run]))
        await asyncio.to_thread(done.wait)
        sup.request_stop()
        await runner

    def serve() -> None:
        # signal handlers need the main thread: stub them out in this loop
        loop.add_signal_handler = lambda *_a: None  # type: ignore[method-assign]
        loop.remove_signal_handler = lambda *_a: True  # type: ignore[method-assign]
        loop.run_until_complete(main_task())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for _ in range(300):
        if sock.exists() and sup.reconciler.last_success:
            break
        threading.Event().wait(0.02)
    yield cfg, sock, sup
    done.set()
    thread.join(10)
    loop.close()


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_status_exit_codes(daemon: tuple[Path, Path, Supervisor], tmp_path: Path) -> None:
    _cfg, sock, sup = daemon
    ok = cli("status", "-s", str(sock), "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["health"]["state"] == "healthy"
    sup.reconciler.appliance = type(sup.reconciler.appliance)(False, ("uplink_down:eth0",))
    threading.Event().wait(STATUS_CACHE_S + 0.05)  # a burst of callers shares one document
    sick = cli("status", "-s", str(sock))
    assert sick.exit_code == 1
    assert "UNHEALTHY" in sick.output
    gone = cli("status", "-s", str(tmp_path / "nothing.sock"))
    assert gone.exit_code == 3
    assert "no daemon socket" in gone.output


def test_wrong_service_is_not_daemon_down(daemon: tuple[Path, Path, Supervisor]) -> None:
    _cfg, sock, _sup = daemon
    result = cli("drain", "-s", str(sock), "--service", "nope")
    assert result.exit_code == 2
    assert "no service named 'nope'" in result.output
    result = cli("drain", "-s", str(sock), "--service", "web", "--backend", "x")
    assert result.exit_code == 2


def test_reload_prints_changes_and_rejects_restart_required(
        daemon: tuple[Path, Path, Supervisor]) -> None:
    cfg, sock, sup = daemon
    cfg.write_text(yaml.safe_dump({**BASE, "api": {"socket": str(sock)},
                                   "services": [*BASE["services"], ARP]}))
    result = cli("reload", "-s", str(sock))
    assert result.exit_code == 0, result.output
    assert "part l2 started" in result.output
    assert "vip 192.0.2.77 gained (service arp)" in result.output
    as_json = cli("reload", "-s", str(sock), "--json")
    assert json.loads(as_json.output)["changes"] == []
    cfg.write_text(yaml.safe_dump({**BASE, "api": {"socket": str(sock), "mode": 0o600}}))
    rejected = cli("reload", "-s", str(sock))
    assert rejected.exit_code == 1
    assert "restart_required: api.mode" in rejected.output
    assert sup.config.service("arp") is not None  # the running config is kept
