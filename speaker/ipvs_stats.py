"""IPVS counters per service and backend *name*, for metrics and `speaker status`.

node_exporter already exports the kernel's IPVS counters keyed by addresses; what
it cannot know is which service and backend an entry belongs to, and it has no
persistent-connection count. This poller reads the forwarder's stats every few
seconds (the kernel's estimator lags ~2 s anyway) and maps them to config names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dataplane.ipvs.model import IpvsStats
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.seams import Forwarder

LOG = event_log(__name__)


@dataclass(slots=True)
class ServiceCounters:
    """Counters of one service, summed over its ports."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cps: int = 0
    """Rates the kernel estimates (ipvsadm -Ln --rate): connections, bytes/s in, out."""
    bps_in: int = 0
    bps_out: int = 0
    backends: dict[str, dict[str, int]] = field(default_factory=dict)
    """backend label -> {"active": n, "inactive": n, "persistent": n}."""
    backend_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    """backend label -> its counters and rates (what ipvsadm -Ln --stats --rate shows)."""


_STAT_FIELDS = ("connections", "packets_in", "packets_out", "bytes_in", "bytes_out", "cps",
                "bps_in", "bps_out")


def by_name(config: AppConfig, stats: IpvsStats) -> dict[str, ServiceCounters]:
    """Sum the kernel's per-key stats into per-service, per-backend-name counters."""
    out: dict[str, ServiceCounters] = {}
    for svc in config.services:
        counters = out.setdefault(svc.name, ServiceCounters())
        labels = {b.address: svc.backend_label(b) for b in svc.backends}
        for key, st in stats.services.items():
            if key.address == svc.vip or (svc.fwmark and key.fwmark == svc.fwmark):
                counters.connections += st.connections
                counters.packets_in += st.packets_in
                counters.packets_out += st.packets_out
                counters.bytes_in += st.bytes_in
                counters.bytes_out += st.bytes_out
                counters.cps += st.cps
                counters.bps_in += st.bps_in
                counters.bps_out += st.bps_out
        for dkey, dst in stats.dests.items():
            if dkey.service.address != svc.vip and not (
                    svc.fwmark and dkey.service.fwmark == svc.fwmark):
                continue
            label = labels.get(dkey.address)
            if label is None:
                continue
            conns = counters.backends.setdefault(label, {"active": 0, "inactive": 0,
                                                         "persistent": 0})
            conns["active"] += dst.active_connections
            conns["inactive"] += dst.inactive_connections
            conns["persistent"] += dst.persistent_connections
            totals = counters.backend_stats.setdefault(label, dict.fromkeys(_STAT_FIELDS, 0))
            for name in _STAT_FIELDS:
                totals[name] += getattr(dst.stats, name)
    return out


class IpvsStatsPoller(Collector):
    """Polls the forwarder's stats; a Prometheus collector over the latest poll."""

    def __init__(self, forwarder: Forwarder, config: Callable[[], AppConfig],
                 interval: float = 5.0) -> None:
        self.forwarder = forwarder
        self.config = config
        self.interval = interval
        self.latest: dict[str, ServiceCounters] = {}

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is logged and retried."""
        while True:
            try:
                _table, stats = await asyncio.to_thread(self.forwarder.snapshot)
                self.latest = by_name(self.config(), stats)
            except OSError as exc:
                LOG.warning("ipvs_stats_failed", reason=type(exc).__name__, error=str(exc))
            await asyncio.sleep(self.interval)

    def collect(self) -> Iterator[Metric]:
        """speaker_ipvs_* families from the latest poll."""
        conns = CounterMetricFamily("speaker_ipvs_connections", "Connections scheduled "
                                    "by IPVS for the service", labels=["service"])
        packets = CounterMetricFamily("speaker_ipvs_packets", "Packets through IPVS for "
                                      "the service", labels=["service", "direction"])
        octets = CounterMetricFamily("speaker_ipvs_bytes", "Bytes through IPVS for the "
                                     "service", labels=["service", "direction"])
        backend = GaugeMetricFamily("speaker_ipvs_backend_connections", "Connections per "
                                    "backend by state (active, inactive, persistent)",
                                    labels=["service", "backend", "state"])
        for name, c in sorted(self.latest.items()):
            conns.add_metric([name], c.connections)
            packets.add_metric([name, "in"], c.packets_in)
            packets.add_metric([name, "out"], c.packets_out)
            octets.add_metric([name, "in"], c.bytes_in)
            octets.add_metric([name, "out"], c.bytes_out)
            for label, states in sorted(c.backends.items()):
                for state, value in states.items():
                    backend.add_metric([name, label, state], value)
        yield from (conns, packets, octets, backend)
