"""Prometheus metrics of the etcd election engine (on speaker.metrics.REGISTRY)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from speaker.metrics import REGISTRY

REQUESTS = Counter("speaker_etcd_requests_total",
                   "etcd requests (and watch responses) by operation and result",
                   ["op", "result"], registry=REGISTRY)
FENCING_TOKEN = Gauge("speaker_election_fencing_token",
                      "Create revision of the group's leader key while this appliance leads "
                      "(0 otherwise): a monotonic fencing token", ["group"], registry=REGISTRY)
LEASE_VALID = Gauge("speaker_etcd_lease_valid_seconds",
                    "Time left, at the last renewal, until this appliance must step down",
                    registry=REGISTRY)
CONNECTED = Gauge("speaker_etcd_connected",
                  "1 while the last etcd request of this appliance succeeded", registry=REGISTRY)
STEP_DOWNS = Counter("speaker_etcd_step_downs_total",
                     "Leaderships given up, by reason (lease_unrenewed, resign, preempted, ...)",
                     ["reason"], registry=REGISTRY)
