"""IPVS counters mapped to service and backend names (speaker_ipvs_* metrics)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from dataplane.ipvs.model import DestKey, DestStats, IpvsStats, ServiceKey, Stats
from speaker.config import parse_text
from speaker.fakes import FakeForwarder
from speaker.ipvs_stats import IpvsStatsPoller, by_name

CFG = parse_text(yaml.safe_dump({
    "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
    "services": [{"name": "web", "vip": "203.0.113.10", "ports": [80, 443], "announce": "l2",
                  "backends": [{"address": "198.51.100.11", "name": "a"},
                               {"address": "198.51.100.12", "name": "b"}]}],
}))
K80, K443 = ServiceKey.tcp("203.0.113.10", 80), ServiceKey.tcp("203.0.113.10", 443)
STATS = IpvsStats(
    services={K80: Stats(connections=10, packets_in=100, bytes_in=1000),
              K443: Stats(connections=5, packets_in=50, bytes_in=500),
              ServiceKey.tcp("198.51.100.200", 80): Stats(connections=99)},
    dests={DestKey(K80, ip_address("198.51.100.11"), 80): DestStats(3, 1, 2),
           DestKey(K443, ip_address("198.51.100.11"), 443): DestStats(1, 0, 1),
           DestKey(K80, ip_address("198.51.100.12"), 80): DestStats(0, 4, 0)},
)


def test_counters_are_summed_per_service_and_backend_name() -> None:
    web = by_name(CFG, STATS)["web"]
    assert web.connections == 15  # the foreign service's 99 are not ours
    assert web.bytes_in == 1500
    assert web.backends["a"] == {"active": 4, "inactive": 1, "persistent": 3}
    assert web.backends["b"] == {"active": 0, "inactive": 4, "persistent": 0}


def test_collector_exposes_speaker_ipvs_metrics() -> None:
    forwarder = FakeForwarder()
    forwarder.stats = STATS
    poller = IpvsStatsPoller(forwarder, lambda: CFG, interval=0.01)

    async def one_poll() -> None:
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(one_poll())
    registry = CollectorRegistry()
    registry.register(poller)
    text = generate_latest(registry).decode()
    assert 'speaker_ipvs_connections_total{service="web"} 15.0' in text
    assert ('speaker_ipvs_backend_connections{backend="a",service="web",state="persistent"} 3.0'
            in text)
    assert 'speaker_ipvs_bytes_total{direction="in",service="web"} 1500.0' in text


def test_rates_and_backend_counters_for_status() -> None:
    stats = IpvsStats(
        services={K80: Stats(connections=10, cps=7, bps_in=800, bps_out=9000)},
        dests={DestKey(K80, ip_address("198.51.100.11"), 80):
               DestStats(2, 1, 0, Stats(connections=6, packets_in=60, cps=4)),
               DestKey(K443, ip_address("198.51.100.11"), 443):
               DestStats(0, 0, 0, Stats(connections=1, cps=1))})
    web = by_name(CFG, stats)["web"]
    assert (web.cps, web.bps_in, web.bps_out) == (7, 800, 9000)
    assert web.backend_stats["a"]["connections"] == 7  # summed over both ports
    assert web.backend_stats["a"]["cps"] == 5
    assert web.backend_stats["a"]["packets_in"] == 60
