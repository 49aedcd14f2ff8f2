"""Prometheus metrics of the health checker (registered on speaker.metrics.REGISTRY).

Per-backend series carry {service, backend}; the check-duration histogram is
per check type only, so thousands of backends do not multiply its buckets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from speaker.metrics import REGISTRY

BACKEND_UP = Gauge(
    "speaker_backend_up",
    "1 if the health checker's verdict for the backend is up, 0 if down or not yet checked",
    ["service", "backend"], registry=REGISTRY,
)
CHECK_DURATION = Histogram(
    "speaker_check_duration_seconds",
    "Duration of single health checks, failed ones included (timeouts last the timeout)",
    ["type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
CHECK_FAILURES = Counter(
    "speaker_check_failures_total",
    "Failed single health checks, by reason (timeout, refused, status_503, ...)",
    ["service", "backend", "reason"], registry=REGISTRY,
)
SERVICE_HEALTHY = Gauge(
    "speaker_service_healthy_backends",
    "Backends of the service whose verdict is up",
    ["service"], registry=REGISTRY,
)
