"""The DNS publisher with an in-memory zone: background updates, errors, removal."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from ipaddress import ip_address
from typing import Any

import yaml
from dns_fakes import FakeClient, FakeZone

from speaker.config import AppConfig, parse_text
from speaker.dns import DnsPublisher
from speaker.dns.client import DnsError

SECRET = "8iqUvfFnWP8POtHjWf6CoysnftkdPzNRmYK73djauHw="
VIP = ip_address("203.0.113.10")
BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "services": [{"name": "web", "vip": str(VIP), "ports": [80], "announce": "l2",
                  "backends": [{"address": "198.51.100.11"}],
                  "dns": {"names": ["web.example.test", "www.example.test"], "ttl": 30}}],
    "dns": {"owner": "fleet", "servers": [{"address": "192.0.2.53", "zone": "example.test",
                                          "tsig": {"name": "es-key", "secret": SECRET}}]},
}


def config(**changes: Any) -> AppConfig:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_text(yaml.safe_dump(data))


def publisher(zone: FakeZone, cfg: AppConfig | None = None) -> tuple[DnsPublisher, FakeClient]:
    client = FakeClient(zone)
    pub = DnsPublisher(cfg or config(), lambda _e: None,
                       client=lambda server, _timeout: setattr(client, "server", server)
                       or client)
    return pub, client


async def until(check: Callable[[], bool], limit: float = 2.0) -> None:
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110 - polls state the publisher keeps, no event
            await asyncio.sleep(0.005)


def running(test: Callable[[DnsPublisher, FakeClient, FakeZone], Awaitable[None]]) -> None:
    async def main() -> None:
        zone = FakeZone()
        pub, client = publisher(zone)
        task = asyncio.create_task(pub.run())
        try:
            await test(pub, client, zone)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def names(pub: DnsPublisher) -> dict[str, Any]:
    status: dict[str, Any] = pub.status()["names"]  # type: ignore[assignment]
    return status


def test_set_publishes_in_the_background() -> None:
    async def body(pub: DnsPublisher, _c: FakeClient, zone: FakeZone) -> None:
        pub.set({"web.example.test": VIP, "www.example.test": VIP})
        await until(lambda: zone.read("www.example.test").addresses == {str(VIP)})
        await until(lambda: names(pub)["web.example.test"]["state"] == "published")
        assert zone.read("web.example.test").addresses == {str(VIP)}
        pub.set({"www.example.test": VIP})
        await until(lambda: zone.read("web.example.test").addresses == frozenset())
        assert names(pub)["web.example.test"]["state"] == "withdrawn"
        assert names(pub)["www.example.test"]["state"] == "published"
    running(body)


def test_nothing_is_touched_before_the_reconciler_speaks() -> None:
    async def body(pub: DnsPublisher, client: FakeClient, zone: FakeZone) -> None:
        await asyncio.sleep(0.1)
        assert client.reads == 0
        assert names(pub)["web.example.test"]["state"] == "pending"
    running(body)


def test_error_is_shown_with_its_reason_and_retried() -> None:
    async def body(pub: DnsPublisher, client: FakeClient, zone: FakeZone) -> None:
        client.fail = DnsError("tsig_bad_signature", "192.0.2.53 rejected the TSIG key")
        pub.set({"web.example.test": VIP})
        await until(lambda: names(pub)["web.example.test"]["state"] == "error")
        entry = names(pub)["web.example.test"]
        assert entry["reason"] == "tsig_bad_signature"
        client.fail = None
        await until(lambda: names(pub)["web.example.test"]["state"] == "published")
        assert zone.read("web.example.test").addresses == {str(VIP)}
        assert names(pub)["web.example.test"]["reason"] == ""
    running(body)


def test_withdraw_all_removes_this_appliances_records() -> None:
    async def body(pub: DnsPublisher, _c: FakeClient, zone: FakeZone) -> None:
        pub.set({"web.example.test": VIP, "www.example.test": VIP})
        await until(lambda: all(n["state"] == "published" for n in names(pub).values()))
        assert await pub.withdraw_all(2.0)
        assert zone.read("web.example.test").addresses == frozenset()
        assert zone.read("www.example.test").txt == frozenset()
    running(body)


def test_a_name_removed_by_reload_is_withdrawn_then_forgotten() -> None:
    async def body(pub: DnsPublisher, _c: FakeClient, zone: FakeZone) -> None:
        pub.set({"web.example.test": VIP, "www.example.test": VIP})
        await until(lambda: all(n["state"] == "published" for n in names(pub).values()))
        services = copy.deepcopy(BASE["services"])
        services[0]["dns"]["names"] = ["www.example.test"]
        pub.reconfigure(config(services=services))
        await until(lambda: "web.example.test" not in names(pub))
        assert zone.read("web.example.test").addresses == frozenset()
        assert zone.read("www.example.test").addresses == {str(VIP)}
    running(body)
