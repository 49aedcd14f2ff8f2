"""Reload reconciles the parts (with fakes): start, stop, replace, restart_required,
removed services leave nothing, metrics follow what the parts report, stop cleans up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import yaml

from speaker.config import AppConfig, load_config
from speaker.factory import BuildContext
from speaker.fakes import (
    FakeAddresses,
    FakeBgp,
    FakeDns,
    FakeElection,
    FakeForwarder,
    FakeHealth,
    FakeL2,
)
from speaker.metrics import REGISTRY
from speaker.parts import managed_ranges
from speaker.sdnotify import Notifier
from speaker.supervisor import Supervisor

BGP = {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]}
WEB = {"name": "web", "vip": "203.0.113.10", "ports": [80], "announce": "bgp",
       "backends": [{"address": "198.51.100.11", "port": 8080}], "health": {"type": "none"},
       "drain_time": "0.2s"}
ARP = {**WEB, "name": "arp", "vip": "192.0.2.77", "announce": "l2"}
BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
    "bgp": BGP, "services": [WEB], "dataplane": {"ipvs": False},
}


class Builder:
    """Builds fakes and remembers what it built."""

    def __init__(self) -> None:
        self.built: list[tuple[str, object]] = []

    def __call__(self, kind: str, config: AppConfig, ctx: BuildContext) -> object | None:
        makers: dict[str, Callable[[AppConfig], object]] = {
            "health": FakeHealth, "election": FakeElection, "bgp": FakeBgp, "l2": FakeL2,
            "dns": FakeDns,
            "addresses": lambda c: FakeAddresses(managed_ranges(c)),
            "forwarder": lambda _c: FakeForwarder()}
        maker = makers.get(kind)
        if maker is None:
            return None
        part = maker(config)
        self.built.append((kind, part))
        return part

    def kinds(self) -> list[str]:
        return [k for k, _ in self.built]


def write(path: Path, **over: Any) -> None:
    path.write_text(yaml.safe_dump({**BASE, **over}))


def announced(vip: str, mode: str) -> float | None:
    return REGISTRY.get_sample_value("speaker_vip_announced", {"vip": vip, "mode": mode})


@asynccontextmanager
async def running(tmp_path: Path, **over: Any) -> AsyncIterator[tuple[Supervisor, Builder]]:
    path = tmp_path / "speaker.yaml"
    write(path, **over)
    builder = Builder()
    sup = Supervisor(path, load_config(path), build_part=builder, notifier=Notifier(""))
    runner = asyncio.create_task(sup.run())
    for _ in range(200):
        if sup.reconciler.last_success:
            break
        await asyncio.sleep(0.01)
    try:
        yield sup, builder
    finally:
        sup.request_stop()
        assert await asyncio.wait_for(runner, 10) == 0


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def test_l2_service_added_by_reload_gets_a_running_responder(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (sup, builder):
            assert sup.parts.l2 is None
            assert "l2" not in builder.kinds()
            write(sup.config_path, services=[WEB, ARP])
            result = await sup.reload()
            assert result["ok"] is True
            assert "part l2 started" in result["changes"]
            assert "vip 192.0.2.77 gained (service arp)" in result["changes"]
            l2 = sup.parts.l2
            assert isinstance(l2, FakeL2)
            await asyncio.sleep(0.05)
            assert l2.running
            assert {str(v.address) for v in l2.current} == {"192.0.2.77"}
            assert announced("192.0.2.77", "l2") == 1.0
            # and removed again: released first, then the part stops
            write(sup.config_path)
            result = await sup.reload()
            assert "part l2 stopped" in result["changes"]
            assert not l2.current
            assert sup.parts.l2 is None
            await asyncio.sleep(0.05)
            assert not l2.running
            assert announced("192.0.2.77", "l2") is None  # series removed
    run(scenario)


def test_single_to_vrrp_replaces_the_engine_and_keeps_the_penalty(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (sup, _builder):
            old = sup.election
            assert isinstance(old, FakeElection)
            sup.reconciler.set_penalty("self_health", 50)
            sup.reconciler.drains = sup.reconciler.drains.with_appliance(1.0)
            write(sup.config_path, election={"engine": "vrrp", "vrrp": {"interface": "eth0"},
                                             "groups": [{"name": "default", "vrid": 9}]})
            result = await sup.reload()
            assert result["ok"], result
            assert "part election replaced (single -> vrrp)" in result["changes"]
            new = sup.election
            assert new is not old
            assert isinstance(new, FakeElection)
            assert sup.reconciler.election is new
            assert new.penalty == 50
            assert new.resigned == [None]  # the appliance drain carries over
            await asyncio.sleep(0.05)
            assert new.running
            assert not old.running
    run(scenario)


def test_bgp_removed_by_reload_withdraws_and_stops(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (sup, _builder):
            bgp = sup.parts.bgp
            assert isinstance(bgp, FakeBgp)
            assert bgp.current
            write(sup.config_path, services=[ARP])
            result = await sup.reload()
            assert "part bgp stopped" in result["changes"]
            assert not bgp.current
            assert sup.parts.bgp is None
            assert announced("203.0.113.10", "bgp") is None
            # and added back: a new speaker announces
            write(sup.config_path)
            result = await sup.reload()
            assert "part bgp started" in result["changes"]
            fresh = sup.parts.bgp
            assert isinstance(fresh, FakeBgp)
            assert fresh is not bgp
            assert {str(a.prefix) for a in fresh.current} == {"203.0.113.10/32"}
    run(scenario)


def test_restart_required_rejects_and_keeps_the_running_config(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (sup, builder):
            before = sup.config
            write(sup.config_path, services=[WEB, ARP], metrics={"port": 9999})
            result = await sup.reload()
            assert result["ok"] is False
            assert result["errors"] == ["restart_required: metrics.port"]
            assert sup.config is before
            assert "l2" not in builder.kinds()  # nothing started
            assert REGISTRY.get_sample_value("speaker_config_last_reload_successful") == 0.0
    run(scenario)


def test_vip_outside_the_start_ranges_is_managed_not_re_added(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, bgp={**BGP, "pools": ["203.0.113.0/28"]}) as (sup, _b):
            addresses = sup.parts.addresses
            assert isinstance(addresses, FakeAddresses)
            write(sup.config_path, bgp=BGP, services=[WEB, ARP])
            await sup.reload()
            for _ in range(3):
                await sup.reconciler.reconcile_once()
            assert addresses.added.count(ip_address("192.0.2.77")) == 1
            # removed again: it leaves lo (still managed although outside the pools)
            write(sup.config_path, bgp=BGP, services=[WEB])
            await sup.reload()
            assert ip_address("192.0.2.77") not in addresses.present
    run(scenario)


def test_removed_service_drains_its_ipvs_then_leaves_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        ipvs = {"ipvs": True}
        async with running(tmp_path, services=[WEB, {**WEB, "name": "b", "vip": "203.0.113.11",
                                                    "drain_time": "60s"}],
                           dataplane=ipvs) as (sup, _builder):
            now = [1000.0]
            sup.reconciler.clock = lambda: now[0]
            forwarder = sup.parts.forwarder
            addresses = sup.parts.addresses
            assert isinstance(forwarder, FakeForwarder)
            assert isinstance(addresses, FakeAddresses)
            assert announced("203.0.113.11", "bgp") == 1.0
            write(sup.config_path, services=[WEB], dataplane=ipvs)
            result = await sup.reload()
            assert "vip 203.0.113.11 lost (service b)" in result["changes"]
            keys = {str(k) for k in forwarder.table.services}
            assert any("203.0.113.11" in k for k in keys)  # still draining
            assert all(d.weight == 0 for d in forwarder.table.dests.values()
                       if str(d.key.service.address) == "203.0.113.11")
            assert ip_address("203.0.113.11") in addresses.present
            assert announced("203.0.113.11", "bgp") is None  # not announced, series gone
            bgp = sup.parts.bgp
            assert isinstance(bgp, FakeBgp)
            assert {str(a.prefix) for a in bgp.current} == {"203.0.113.10/32"}
            now[0] += 61
            await sup.reconciler.reconcile_once()
            assert not any("203.0.113.11" in str(k) for k in forwarder.table.services)
            assert ip_address("203.0.113.11") not in addresses.present
    run(scenario)


def test_vip_announced_is_what_the_speaker_reports(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as (sup, _builder):
            bgp = sup.parts.bgp
            assert isinstance(bgp, FakeBgp)
            await bgp.set(())
            bgp.fail = RuntimeError("exabgp down")
            await sup.reconciler.reconcile_once()
            # decided `announced`, but the speaker has not got it: the metric says 0
            assert sup.reconciler.desired is not None
            assert sup.reconciler.desired.decisions[0].bgp.value == "announced"
            assert announced("203.0.113.10", "bgp") == 0.0
    run(scenario)


def test_stop_withdraws_then_removes_addresses_and_ipvs(tmp_path: Path) -> None:
    for keep in (False, True):
        async def scenario(keep: bool = keep) -> None:
            path = tmp_path / f"s{keep}.yaml"
            write(path, dataplane={"ipvs": True, "keep_on_stop": keep})
            sup = Supervisor(path, load_config(path), build_part=Builder(),
                             notifier=Notifier(""))
            runner = asyncio.create_task(sup.run())
            for _ in range(500):
                if sup.reconciler.last_success:
                    break
                await asyncio.sleep(0.01)
            forwarder, addresses, bgp = sup.parts.forwarder, sup.parts.addresses, sup.parts.bgp
            assert isinstance(forwarder, FakeForwarder)
            assert isinstance(addresses, FakeAddresses)
            assert isinstance(bgp, FakeBgp)
            assert forwarder.table.services
            assert addresses.present
            sup.request_stop()
            assert await asyncio.wait_for(runner, 10) == 0
            assert not bgp.current
            assert bool(forwarder.table.services) is keep
            assert bool(addresses.present) is keep
        asyncio.run(scenario())


class YieldingL2(FakeL2):
    """An L2 part whose duplicate-owner rule made it yield every VIP it was given."""

    def owned(self) -> frozenset[Any]:
        return frozenset()

    def status(self) -> dict[str, object]:
        return {"yielded": [str(v.address) for v in self.current],
                "conflicts": [{"vip": str(v.address), "other_mac": "02:00:00:00:00:99"}
                              for v in self.current]}


def test_status_shows_what_is_on_the_wire_and_why_not(tmp_path: Path) -> None:
    from speaker.status import status_document

    class YieldBuilder(Builder):
        def __call__(self, kind: str, config: AppConfig, ctx: BuildContext) -> object | None:
            return YieldingL2(config) if kind == "l2" else super().__call__(kind, config, ctx)

    async def scenario() -> None:
        path = tmp_path / "speaker.yaml"
        write(path, services=[WEB, ARP])
        sup = Supervisor(path, load_config(path), build_part=YieldBuilder(),
                         notifier=Notifier(""))
        runner = asyncio.create_task(sup.run())
        for _ in range(200):
            if sup.reconciler.last_success:
                break
            await asyncio.sleep(0.01)
        doc = status_document(sup)
        vip = next(v for v in doc["vips"] if v["vip"] == "192.0.2.77")
        assert vip["l2"]["decided"] == "announced"
        assert vip["l2"]["owned"] is False
        assert vip["l2"]["reason"] == "yielded_to_other_owner"
        assert vip["l2"]["conflict"]["other_mac"] == "02:00:00:00:00:99"
        assert doc["health"]["state"] == "degraded"
        assert "l2:192.0.2.77:yielded_to_other_owner" in doc["health"]["reasons"]
        assert announced("192.0.2.77", "l2") == 0.0
        sup.request_stop()
        assert await asyncio.wait_for(runner, 10) == 0
    asyncio.run(scenario())


def test_a_part_that_cannot_be_built_rejects_the_reload(tmp_path: Path) -> None:
    class Failing(Builder):
        def __call__(self, kind: str, config: AppConfig, ctx: BuildContext) -> object | None:
            if kind == "l2" and self.built:
                raise OSError("no such interface")
            return super().__call__(kind, config, ctx)

    async def scenario() -> None:
        path = tmp_path / "speaker.yaml"
        write(path)
        sup = Supervisor(path, load_config(path), build_part=Failing(), notifier=Notifier(""))
        runner = asyncio.create_task(sup.run())
        await asyncio.sleep(0.05)
        before = sup.config
        write(path, services=[WEB, ARP])
        result = await sup.reload()
        assert result["ok"] is False
        assert result["errors"] == ["OSError: no such interface"]
        assert sup.config is before
        assert sup.parts.l2 is None
        sup.request_stop()
        assert await asyncio.wait_for(runner, 10) == 0
    asyncio.run(scenario())


def test_a_dns_publisher_added_and_removed_by_reload(tmp_path: Path) -> None:
    """A part built by another engineer plugs in with one describer and one builder."""
    dns = {"servers": [{"address": "192.0.2.53", "zone": "example.test",
                        "tsig": {"name": "k",
                                 "secret": "8iqUvfFnWP8POtHjWf6CoysnftkdPzNRmYK73djauHw="}}]}
    named = {**WEB, "dns": {"names": ["web.example.test"]}}

    async def scenario() -> None:
        async with running(tmp_path) as (sup, _builder):
            assert sup.parts.dns is None
            write(sup.config_path, services=[named], dns=dns)
            result = await sup.reload()
            assert "part dns started" in result["changes"], result
            part = sup.parts.dns
            assert isinstance(part, FakeDns)
            assert part.serving == {"web.example.test": ip_address("203.0.113.10")}
            write(sup.config_path)
            result = await sup.reload()
            assert "part dns stopped" in result["changes"]
            assert part.serving == {}  # withdrawn before the part stopped
            assert sup.parts.dns is None
    run(scenario)
