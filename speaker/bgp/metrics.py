"""Prometheus metrics of the BGP speaker, registered on the appliance registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from speaker.metrics import REGISTRY

SESSION_UP = Gauge(
    "speaker_bgp_session_up",
    "1 while the BGP session to the peer is established",
    ["peer"],
    registry=REGISTRY,
)
SESSION_FLAPS = Counter(
    "speaker_bgp_session_flaps",
    "Times the established session to the peer went down (any reason)",
    ["peer"],
    registry=REGISTRY,
)
ANNOUNCED_PREFIXES = Gauge(
    "speaker_bgp_announced_prefixes",
    "Prefixes announced to the peer (acknowledged by ExaBGP)",
    ["peer"],
    registry=REGISTRY,
)
UPDATES = Counter(
    "speaker_bgp_updates",
    "Prefixes sent to ExaBGP per peer and kind (announce, withdraw, eor, error)",
    ["peer", "kind"],
    registry=REGISTRY,
)
EXABGP_RESTARTS = Counter(
    "speaker_exabgp_restarts",
    "Times ExaBGP exited unexpectedly and was restarted",
    registry=REGISTRY,
)
