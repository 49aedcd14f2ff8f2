"""Prometheus metrics of the appliance's BFD sessions, on the appliance registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from speaker.metrics import REGISTRY

SESSION_UP = Gauge(
    "speaker_bfd_session_up",
    "1 while the appliance's BFD session to the peer is Up",
    ["peer"],
    registry=REGISTRY,
)
STATE_CHANGES = Counter(
    "speaker_bfd_state_changes",
    "State changes of the appliance's BFD session to the peer",
    ["peer"],
    registry=REGISTRY,
)
CHILD_RESTARTS = Counter(
    "speaker_bfd_child_restarts",
    "Times the BFD child process exited unexpectedly and was restarted",
    registry=REGISTRY,
)
