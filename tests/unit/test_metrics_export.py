"""speaker_vip_announced is set only where it changed and follows reloads."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from speaker.config import AppConfig
from speaker.metrics_export import VipAnnouncedExporter

BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
    "bgp": {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
}


def service(name: str, vip: str, announce: str) -> dict[str, Any]:
    return {"name": name, "vip": vip, "ports": [80], "announce": announce,
            "backends": [{"address": "198.51.100.11", "port": 8080}],
            "health": {"type": "none"}}


def setup() -> tuple[CollectorRegistry, VipAnnouncedExporter]:
    registry = CollectorRegistry()
    gauge = Gauge("speaker_vip_announced", "test", ["vip", "mode"], registry=registry)
    return registry, VipAnnouncedExporter(gauge)


def value(registry: CollectorRegistry, vip: str, mode: str) -> float | None:
    return registry.get_sample_value("speaker_vip_announced", {"vip": vip, "mode": mode})


def test_only_changed_values_are_set_and_removed_vips_disappear() -> None:
    registry, exporter = setup()
    config = AppConfig.model_validate({**BASE, "services": [
        service("a", "203.0.113.10", "bgp"), service("b", "203.0.113.11", "both")]})
    a, b = ip_address("203.0.113.10"), ip_address("203.0.113.11")
    exporter.export(config, {a}, set())
    assert (value(registry, "203.0.113.10", "bgp"), value(registry, "203.0.113.11", "bgp"),
            value(registry, "203.0.113.11", "l2")) == (1.0, 0.0, 0.0)
    assert exporter.sets == 3
    exporter.export(config, {a}, set())  # nothing moved: no writes
    assert exporter.sets == 3
    exporter.export(config, {a, b}, {b})
    assert exporter.sets == 5
    assert value(registry, "203.0.113.11", "l2") == 1.0
    smaller = AppConfig.model_validate({**BASE, "services": [
        service("a", "203.0.113.10", "bgp")]})
    exporter.export(smaller, set(), set())
    assert value(registry, "203.0.113.10", "bgp") == 0.0
    assert value(registry, "203.0.113.11", "bgp") is None
    assert value(registry, "203.0.113.11", "l2") is None
