"""Prometheus metrics of the election (registered on speaker.metrics.REGISTRY)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from speaker.metrics import REGISTRY

LEADER = Gauge("speaker_leader", "1 if this appliance leads the group", ["group"],
               registry=REGISTRY)
LEADER_CHANGES = Counter("speaker_leader_changes_total",
                         "Times this appliance gained or lost the lead of the group", ["group"],
                         registry=REGISTRY)
FAILOVER = Histogram(
    "speaker_failover_seconds",
    "Takeover time seen locally: last advert heard from the old master to becoming master",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0),
    registry=REGISTRY)
VRRP_SENT = Counter("speaker_vrrp_adverts_sent_total", "VRRP advertisements sent", ["group"],
                    registry=REGISTRY)
VRRP_RECEIVED = Counter("speaker_vrrp_adverts_received_total",
                        "Valid VRRP advertisements received from other routers", ["group"],
                        registry=REGISTRY)
VRRP_DISCARDED = Counter("speaker_vrrp_adverts_discarded_total",
                         "VRRP packets discarded (RFC 5798 7.1), by reason", ["reason"],
                         registry=REGISTRY)
PRIORITY = Gauge("speaker_election_priority", "Effective election priority of the group",
                 ["group"], registry=REGISTRY)
