"""Prometheus registry of the appliance and the supervisor's own metrics.

Each part defines its metrics next to its code, registered on `REGISTRY`.
Names follow DESIGN.md: prefix `speaker_`, base units, `_total` only on
counters; `_created` series are disabled.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream

REGISTRY = CollectorRegistry(auto_describe=True)
prometheus_client.ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, fds, RSS
prometheus_client.PlatformCollector(registry=REGISTRY)  # python_info

BUILD_INFO = Info("speaker_build", "edge-speaker build information", registry=REGISTRY)
CONFIG_RELOAD_OK = Gauge(
    "speaker_config_last_reload_successful",
    "1 if the last config (re)load was accepted, 0 if it was rejected",
    registry=REGISTRY,
)
CONFIG_RELOAD_TIME = Gauge(
    "speaker_config_last_reload_success_timestamp_seconds",
    "Unix time of the last accepted config load",
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "speaker_reconcile_duration_seconds",
    "Time for one reconcile pass (observe, plan, apply)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "speaker_reconcile_errors_total",
    "Reconcile passes in which applying an operation failed",
    ["component"],
    registry=REGISTRY,
)
VIP_ANNOUNCED = Gauge(
    "speaker_vip_announced",
    "1 if the VIP is announced by this appliance in this mode",
    ["vip", "mode"],
    registry=REGISTRY,
)
APPLIANCE_HEALTHY = Gauge(
    "speaker_appliance_healthy",
    "1 while the appliance's self-checks pass (uplinks up, services at quorum); "
    "0 lowers its election priority and withdraws its BGP routes",
    registry=REGISTRY,
)
