"""The supervisor with fakes: API, reload (good and bad), SIGTERM, sd_notify."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.api.client import ApiError, request
from speaker.api.server import ApiServer
from speaker.config import AppConfig, load_config
from speaker.daemon import register_handlers
from speaker.factory import BuildContext
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.metrics import REGISTRY
from speaker.sdnotify import Notifier
from speaker.supervisor import Supervisor

CFG: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "lo"}]},
    "bgp": {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
    "services": [{"name": "web", "vip": "203.0.113.10", "ports": [80],
                  "backends": [{"address": "198.51.100.11", "port": 8080}],
                  "health": {"type": "none"}, "drain_time": "0.2s"}],
}


def fake_build(kind: str, config: AppConfig, ctx: BuildContext) -> object | None:
    """Fakes for every kind of part (the real ones: speaker.factory.build_part)."""
    makers: dict[str, Any] = {"health": FakeHealth, "election": FakeElection, "bgp": FakeBgp,
                              "l2": FakeL2, "addresses": lambda _c: FakeAddresses(),
                              "forwarder": lambda _c: FakeForwarder()}
    maker = makers.get(kind)
    return None if maker is None else maker(config)


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def test_reload_rejects_bad_config_and_keeps_running(tmp_path: Path) -> None:
    cfg_path = tmp_path / "speaker.yaml"
    sock = tmp_path / "api.sock"
    write(cfg_path, {**CFG, "api": {"socket": str(sock)}})
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.settimeout(5)
    sup = Supervisor(cfg_path, load_config(cfg_path), build_part=fake_build,
                     notifier=Notifier(str(notify)))
    api = ApiServer(sock)
    register_handlers(api, sup)
    bgp = sup.built.parts.bgp
    assert isinstance(bgp, FakeBgp)

    async def scenario() -> int:
        runner = asyncio.create_task(sup.run(extra=[api.run]))
        for _ in range(100):
            if sock.exists() and sup.reconciler.last_success:
                break
            await asyncio.sleep(0.02)
        status = await asyncio.to_thread(request, sock, "status")
        assert status["ready"] is True
        assert status["vips"][0]["bgp"]["announced"] is True
        # a bad edit: rejected, old config kept, metric 0
        bad = {**CFG, "api": {"socket": str(sock)}}
        bad["services"] = [{**CFG["services"][0], "scheduler": "random"}]
        write(cfg_path, bad)
        result = await asyncio.to_thread(request, sock, "reload")
        assert result["ok"] is False
        assert any("services[0].scheduler" in e for e in result["errors"])
        assert gauge("speaker_config_last_reload_successful") == 0.0
        assert sup.config.services[0].scheduler == "wlc"
        assert len(bgp.current) == 1
        status = await asyncio.to_thread(request, sock, "status")
        assert status["config"]["last_reload"]["ok"] is False
        # a good edit via SIGHUP: adopted
        good = {**CFG, "api": {"socket": str(sock)}}
        good["services"] = [{**CFG["services"][0], "vip": "203.0.113.20"}]
        write(cfg_path, good)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(500):  # the reload parses in a child process (~0.5 s)
            if {str(a.prefix) for a in bgp.current} == {"203.0.113.20/32"}:
                break
            await asyncio.sleep(0.02)
        assert gauge("speaker_config_last_reload_successful") == 1.0
        assert {str(a.prefix) for a in bgp.current} == {"203.0.113.20/32"}
        # SIGTERM: withdraw everything, then return 0
        os.kill(os.getpid(), signal.SIGTERM)
        return await asyncio.wait_for(runner, 10)

    assert asyncio.run(scenario()) == 0
    assert not bgp.current
    messages = []
    while True:
        try:
            messages.append(listener.recv(4096).decode())
        except TimeoutError:
            break
        if "STOPPING=1" in messages[-1]:
            break
    listener.close()
    assert any(m.startswith("READY=1") for m in messages)
    assert any("STOPPING=1" in m for m in messages)
    # each reload (the rejected one and the SIGHUP) is bracketed RELOADING=1 ... READY=1
    reloads = [i for i, m in enumerate(messages) if m.startswith("RELOADING=1")]
    assert len(reloads) == 2
    assert all("MONOTONIC_USEC=" in messages[i] for i in reloads)
    for n, i in enumerate(reloads):
        until = reloads[n + 1] if n + 1 < len(reloads) else len(messages)
        assert any(m.startswith("READY=1") for m in messages[i + 1:until]), messages[i:until]


def test_drain_and_undrain_through_the_api(tmp_path: Path) -> None:
    cfg_path = tmp_path / "speaker.yaml"
    sock = tmp_path / "api.sock"
    write(cfg_path, {**CFG, "api": {"socket": str(sock)}})
    sup = Supervisor(cfg_path, load_config(cfg_path), build_part=fake_build, notifier=Notifier(""))
    api = ApiServer(sock)
    register_handlers(api, sup)
    election = sup.built.election
    assert isinstance(election, FakeElection)

    async def scenario() -> None:
        runner = asyncio.create_task(sup.run(extra=[api.run]))
        for _ in range(100):
            if sock.exists() and sup.reconciler.last_success:
                break
            await asyncio.sleep(0.02)
        result = await asyncio.to_thread(request, sock, "drain", service="web",
                                         backend="198.51.100.11:8080")
        assert result["backends"] == ["web/198.51.100.11:8080"]
        status = await asyncio.to_thread(request, sock, "status")
        assert status["vips"][0]["backends"][0]["state"] == "backend_draining"
        assert status["vips"][0]["backends"][0]["weight"] == 0
        await asyncio.to_thread(request, sock, "undrain", service="web",
                                backend="198.51.100.11:8080")
        await asyncio.to_thread(request, sock, "drain")
        assert election.resigned == [None]
        assert election.penalty == 254
        # self-health clearing its own penalty must not cancel the drain's
        sup.reconciler.set_penalty("self_health", 0)
        assert election.penalty == 254
        status = await asyncio.to_thread(request, sock, "status")
        assert status["appliance"]["drains"]["appliance"] is True
        with pytest.raises(ApiError, match="no service named"):
            await asyncio.to_thread(request, sock, "drain", service="nope")
        await asyncio.to_thread(request, sock, "undrain")
        assert election.resigned == []  # reclaimed: competes for leadership again
        assert election.penalty == 0
        sup.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(scenario())
