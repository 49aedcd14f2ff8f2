"""BfdRunner's supervision of the child, with a stand-in child (no network): frames
become status, metrics and wake-ups; a reload sends the new sessions; a crash is
restarted and counted; no session means no child."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from speaker.bfd.runner import BfdRunner
from speaker.config import AppConfig
from speaker.metrics import REGISTRY

STAND_IN = r'''
import json, os, struct, sys, time
log = open(sys.argv[1], "a")
def send(msg):
    body = json.dumps(msg).encode()
    sys.stdout.buffer.write(struct.pack("!I", len(body)) + body); sys.stdout.buffer.flush()
send({"t": "hello", "pid": os.getpid(), "sched": "stand-in"})
buf = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        log.write("eof\n"); break
    buf += chunk
    while len(buf) >= 4 and len(buf) >= 4 + struct.unpack("!I", buf[:4])[0]:
        n = struct.unpack("!I", buf[:4])[0]
        msg = json.loads(buf[4:4 + n]); buf = buf[4 + n:]
        log.write(json.dumps(msg) + "\n"); log.flush()
        for s in msg["sessions"]:
            send({"t": "state", "peer": s["peer"], "old": "down", "new": "down",
                  "diag": "none", "remote_diag": "none"})
            send({"t": "state", "peer": s["peer"], "old": "down", "new": "up",
                  "diag": "none", "remote_diag": "none"})
        if os.environ.get("BFD_STAND_IN_CRASH"):
            time.sleep(0.2); sys.exit(7)
'''


def config(peers: list[dict[str, Any]]) -> AppConfig:
    return AppConfig.model_validate({
        "node": {"name": "a1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
        "bgp": {"local_asn": 65010, "peers": peers}})


PEERS = [{"name": "r1", "address": "192.0.2.1", "asn": 65000, "bfd": True},
         {"name": "r2", "address": "192.0.2.2", "asn": 65000}]


def runner(tmp_path: Path, cfg: AppConfig, wakes: list[str]) -> tuple[BfdRunner, Path]:
    script = tmp_path / "child.py"
    script.write_text(STAND_IN)
    log = tmp_path / "child.log"
    return BfdRunner(cfg, wakes.append, child_argv=[sys.executable, str(script), str(log)]), log


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110 - polls state kept by another task
            await asyncio.sleep(0.02)


def run(scenario: Callable[[], Awaitable[None]], bfd: BfdRunner) -> None:
    async def main() -> None:
        task = asyncio.create_task(bfd.run())
        try:
            await scenario()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    asyncio.run(main())


def test_frames_become_status_metrics_and_wakes_and_reload_sends_new_timers(
        tmp_path: Path) -> None:
    wakes: list[str] = []
    bfd, log = runner(tmp_path, config(PEERS), wakes)
    assert bfd.sessions()["r1"].state == "not_running"
    assert "r2" not in bfd.sessions()

    async def scenario() -> None:
        await until(lambda: bfd.sessions()["r1"].state == "up")
        status = bfd.status()
        assert status["child"]["running"]
        assert status["child"]["sched"] == "stand-in"
        assert status["sessions"]["r1"]["changes"] == 1  # down -> down is not a change
        assert REGISTRY.get_sample_value("speaker_bfd_session_up", {"peer": "r1"}) == 1
        assert wakes == ["bfd_session_up"]
        peers = [dict(PEERS[0], bfd={"min_tx": "100ms", "min_rx": "100ms"}),
                 dict(PEERS[1], bfd=True)]
        bfd.reconfigure(config(peers))
        await until(lambda: log.read_text().count('"t": "config"') == 2)
        await until(lambda: bfd.sessions().get("r2") is not None
                    and bfd.sessions()["r2"].state == "up")
        last = json.loads(log.read_text().splitlines()[-1])
        assert [(s["peer"], s["min_tx_ms"]) for s in last["sessions"]] == [("r1", 100),
                                                                           ("r2", 300)]
        assert bfd.sessions()["r1"].min_tx_ms == 100
        assert bfd.sessions()["r1"].state == "up"  # same session: kept, timers changed
        pid = bfd.status()["child"]["pid"]
        bfd.reconfigure(config([dict(p, bfd=False) for p in PEERS]))
        await until(lambda: "eof" in log.read_text())  # no session left: child stopped
        await until(lambda: not bfd.status()["child"]["running"])
        assert bfd.sessions() == {}
        assert bfd.restarts == 0
        assert pid is not None

    run(scenario, bfd)


def test_a_crashing_child_is_restarted_and_counted(tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    monkeypatch.setenv("BFD_STAND_IN_CRASH", "1")
    wakes: list[str] = []
    bfd, log = runner(tmp_path, config(PEERS), wakes)
    before = REGISTRY.get_sample_value("speaker_bfd_child_restarts_total") or 0.0

    async def scenario() -> None:
        await until(lambda: bfd.restarts >= 2)
        assert bfd.status()["child"]["last_exit"] == 7
        assert log.read_text().count('"t": "config"') >= 2  # every life gets the sessions

    run(scenario, bfd)
    assert (REGISTRY.get_sample_value("speaker_bfd_child_restarts_total") or 0) - before >= 2
    assert bfd.sessions()["r1"].state == "not_running"


def test_missing_executable_is_reported_not_raised(tmp_path: Path) -> None:
    bfd = BfdRunner(config(PEERS), lambda _: None,
                    child_argv=[str(tmp_path / "no-such-child")])

    async def scenario() -> None:
        await until(lambda: bfd.restarts >= 1)
        assert bfd.status()["child"]["last_exit"] == -1

    run(scenario, bfd)
