"""The status document at scale: one snapshot per call, indexed lookups, the sliced
encoder gives the same document as the one-go builder, and callers share builds."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.api.status_body import SharedStatus, encode_status
from speaker.config import AppConfig, load_config
from speaker.factory import BuildContext
from speaker.fakes import FakeAddresses, FakeBgp, FakeElection, FakeForwarder, FakeHealth, FakeL2
from speaker.sdnotify import Notifier
from speaker.status import status_document
from speaker.status_index import service_views, take_index
from speaker.supervisor import Supervisor

TIMES = {"uptime_s", "age_s", "since_s", "age"}


def services(count: int) -> list[dict[str, Any]]:
    """`count` BGP services, two checked backends each (shared addresses)."""
    return [{"name": f"s{i}", "vip": f"203.0.113.{i % 250 + 1}" if i < 250 else
             f"198.51.100.{i - 249}", "ports": [80], "announce": "bgp",
             "backends": [{"address": "192.0.2.21", "port": 8080},
                          {"address": "192.0.2.22", "port": 8080}],
             "health": {"type": "tcp"}} for i in range(count)]


def base(svcs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "lo"}]},
            "bgp": {"local_asn": 65010, "pools": ["203.0.113.0/24", "198.51.100.0/24"],
                    "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
            "services": svcs, "dataplane": {"ipvs": True}}


class CountingHealth(FakeHealth):
    """FakeHealth that counts snapshots."""

    def __init__(self, config: AppConfig | None = None) -> None:
        super().__init__(config)
        self.snapshots = 0

    def snapshot(self) -> Any:
        self.snapshots += 1
        return super().snapshot()


def build(kind: str, config: AppConfig, _ctx: BuildContext) -> object | None:
    makers: dict[str, Any] = {"health": CountingHealth, "election": FakeElection,
                              "bgp": FakeBgp, "l2": FakeL2,
                              "addresses": lambda _c: FakeAddresses(),
                              "forwarder": lambda _c: FakeForwarder()}
    maker = makers.get(kind)
    return None if maker is None else maker(config)


def supervisor(tmp_path: Path, data: dict[str, Any]) -> Supervisor:
    path = tmp_path / "speaker.yaml"
    path.write_text(yaml.safe_dump(data))
    return Supervisor(path, load_config(path), build_part=build, notifier=Notifier(""))


def health_of(sup: Supervisor) -> CountingHealth:
    health = sup.built.health
    assert isinstance(health, CountingHealth)
    return health


def all_up(sup: Supervisor) -> None:
    health = health_of(sup)
    for svc in sup.config.services:
        for b in svc.backends:
            health.set(svc.name, svc.backend_label(b), True)


def untimed(value: Any) -> Any:
    """The document without the fields that move with the clock."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def test_sliced_encoder_gives_the_one_go_document(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(450)))
    all_up(sup)
    health_of(sup).set("s3", "192.0.2.22:8080", False, since=time.monotonic())

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await sup.reconciler.reconcile_once()
        bgp = sup.built.parts.bgp
        assert isinstance(bgp, FakeBgp)  # one route not acked yet: `pending`
        bgp.current = frozenset(a for a in bgp.current if str(a.prefix) != "203.0.113.4/32")
        sliced = json.loads(await encode_status(sup, slice_size=7))
        return sliced, json.loads(json.dumps(status_document(sup), default=str))

    sliced, whole = asyncio.run(scenario())
    assert untimed(sliced) == untimed(whole)
    assert len(sliced["vips"]) == 450
    assert sliced["vips"][3]["backends"][1]["state"] == "backend_draining"
    assert sliced["vips"][3]["backends"][1]["weight"] == 0
    assert sliced["health"] == {"state": "degraded", "reasons": ["bgp:203.0.113.4:pending"]}


def test_one_health_snapshot_per_document_whatever_the_size(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(300)))
    all_up(sup)
    asyncio.run(sup.reconciler.reconcile_once())
    health = health_of(sup)
    before = health.snapshots
    doc = status_document(sup)
    assert health.snapshots == before + 1
    assert all(b["check"]["up"] for v in doc["vips"] for b in v["backends"])
    before = health.snapshots
    asyncio.run(encode_status(sup))
    assert health.snapshots == before + 1


def test_weights_follow_the_backend_port_and_fwmark(tmp_path: Path) -> None:
    """Two backends on one address (different ports) each show their own weight; a
    fwmark service shows its backends' weights too."""
    svcs = [{"name": "web", "vip": "203.0.113.10", "ports": [80], "announce": "bgp",
             "backends": [{"address": "192.0.2.21", "port": 8080, "weight": 3},
                          {"address": "192.0.2.21", "port": 8081, "weight": 7}],
             "health": {"type": "none"}},
            {"name": "marked", "vip": "203.0.113.11", "fwmark": 5, "announce": "bgp",
             "backends": [{"address": "192.0.2.22", "weight": 4}],
             "health": {"type": "none"}}]
    sup = supervisor(tmp_path, base(svcs))
    asyncio.run(sup.reconciler.reconcile_once())
    doc = status_document(sup)
    assert [b["weight"] for b in doc["vips"][0]["backends"]] == [3, 7]
    assert [b["weight"] for b in doc["vips"][1]["backends"]] == [4]


def test_service_views_are_kept_per_config(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(3)))
    first = service_views(sup.config)
    assert service_views(sup.config) is first
    assert first["s1"].backends[0][0] == "192.0.2.21:8080"
    other = load_config(sup.config_path)
    assert service_views(other) is not first


def test_index_reads_each_part_once(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(5)))
    all_up(sup)
    asyncio.run(sup.reconciler.reconcile_once())
    index = take_index(sup)
    assert len(index.decisions) == 5
    assert set(index.announced) == {s.vip for s in sup.config.services}
    assert index.peers == ()


def test_encoder_lets_the_loop_run_between_slices(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(400)))
    all_up(sup)

    async def scenario() -> int:
        await sup.reconciler.reconcile_once()
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = ticks
        await encode_status(sup, slice_size=10)
        done.set()
        await task
        return ticks - start

    assert asyncio.run(scenario()) >= 40  # at least one turn per slice of 10 VIPs


def test_callers_share_a_build_until_something_moves(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, base(services(50)))
    all_up(sup)

    async def scenario() -> tuple[int, int, int, bool]:
        await sup.reconciler.reconcile_once()
        shared = SharedStatus(sup, max_age=60.0)
        answers = await asyncio.gather(*(shared.get() for _ in range(100)))
        burst = shared.builds
        same = all(a.body is answers[0].body for a in answers)
        await shared.get()  # still fresh, nothing moved
        cached = shared.builds
        await sup.reconciler.reconcile_once()  # a pass: the document may show new state
        await shared.get()
        return burst, cached, shared.builds, same

    burst, cached, after_pass, same = asyncio.run(scenario())
    assert (burst, cached, after_pass) == (1, 1, 2)
    assert same


def test_a_failed_build_is_not_served_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    sup = supervisor(tmp_path, base(services(2)))
    calls = {"n": 0}

    async def broken(_sup: Supervisor) -> bytes:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return b"{}"

    monkeypatch.setattr("speaker.api.status_body.encode_status", broken)

    async def scenario() -> bytes:
        shared = SharedStatus(sup, max_age=60.0)
        with pytest.raises(RuntimeError):
            await shared.get()
        return (await shared.get()).body

    assert asyncio.run(scenario()) == b"{}"


def test_api_sends_an_encoded_result_whole(tmp_path: Path) -> None:
    """A pre-encoded result larger than one write piece arrives intact."""
    from speaker.api.client import request
    from speaker.api.server import WRITE_PIECE, ApiServer, Encoded

    sock = tmp_path / "api.sock"
    api = ApiServer(sock)
    big = {"rows": ["x" * 100] * (3 * WRITE_PIECE // 100)}

    async def status(_args: dict[str, Any]) -> Encoded:
        return Encoded(json.dumps(big).encode())

    api.register("status", status)

    async def scenario() -> Any:
        server = asyncio.create_task(api.run())
        for _ in range(500):  # the server creates the socket file when it listens
            if sock.exists():
                break
            await asyncio.sleep(0.01)
        try:
            return await asyncio.to_thread(request, sock, "status")
        finally:
            server.cancel()

    assert asyncio.run(scenario()) == big


def test_a_stale_build_ends_before_the_next_starts(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Something moves while a build runs: the next caller waits for that build to end,
    then gets a new one; two builds never run at once."""
    sup = supervisor(tmp_path, base(services(2)))
    running = {"now": 0, "most": 0, "builds": 0}
    release = asyncio.Event()

    async def slow(_sup: Supervisor) -> bytes:
        running["now"] += 1
        running["most"] = max(running["most"], running["now"])
        running["builds"] += 1
        await release.wait()
        running["now"] -= 1
        return b'{"build": %d}' % running["builds"]

    monkeypatch.setattr("speaker.api.status_body.encode_status", slow)

    async def scenario() -> list[bytes]:
        shared = SharedStatus(sup, max_age=60.0)
        first = asyncio.create_task(shared.get())
        await asyncio.sleep(0)
        await sup.reconciler.reconcile_once()  # the running build is now stale
        second = asyncio.create_task(shared.get())
        await asyncio.sleep(0.01)
        release.set()
        return [(await first).body, (await second).body]

    assert asyncio.run(scenario()) == [b'{"build": 1}', b'{"build": 2}']
    assert running["most"] == 1
