"""Messages between the supervisor and the timing child (JSON objects with a `type`).

Supervisor -> child (full desired state; each may be resent at any time):
  config {config}            slim config: node, election, log, one entry per service
  l2_set {seq, vips}         answer for exactly these VIPs (acked by l2_done {seq})
  penalty {penalty, reason}  self-health penalty of every group
  resign {seq, group}        planned handover (acked by resign_done {seq}); reclaim {group}
  stop {}                    send priority 0, close sockets, exit 0
Child -> supervisor:
  state {leadership, owned, status, events}   on every change and every second
  metrics {text}                               Prometheus text of the child's metrics
  l2_done {seq, owned} / resign_done {seq}
  restart {reason}                             the new config needs a fresh child
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from speaker.config import AppConfig
from speaker.model import L2Vip, Leadership

RESTART_EXIT = 75
"""Exit status of a child that asked to be restarted with the latest config."""


def slim_config(config: AppConfig) -> dict[str, Any]:
    """What the child needs of `config`, as JSON: node, election, log and, per
    service, its VIP and group (no backends, no health checks: a 5,000-backend config
    stays a few kB and validates in milliseconds). Every service is listed as `l2`
    (the VRRP adverts list the group's VIPs whatever the announce mode); whether the
    child runs the L2 responder is `child_shape()`'s second half, sent alongside."""
    data = config.model_dump(mode="json", include={"node", "election", "log", "dataplane"})
    data["dataplane"] = {"ipvs": False}
    data["services"] = [{
        "name": s.name, "vip": str(s.vip),
        "ports": s.model_dump(mode="json", include={"ports"})["ports"],
        "announce": "l2", "group": s.group,
        "backends": [s.model_dump(mode="json", include={"backends"})["backends"][0]],
        "health": {"type": "none"},
    } for s in config.services]
    return data


def config_from(data: dict[str, Any]) -> AppConfig:
    """The child's AppConfig from `slim_config()` output."""
    return AppConfig.model_validate(data)


def needs_child(config: AppConfig) -> bool:
    """True if this config has time-critical L2/VRRP work (then it runs in the child).
    The etcd engine stays on the supervisor's loop with its responder: its fencing
    (silent before the new key holder speaks) is proven with the in-process timing,
    and a lease is not time-critical the way a 100 ms advert is."""
    if config.election.engine == "etcd":
        return False
    return config.election.engine == "vrrp" or any(
        s.announce in ("l2", "both") for s in config.services)


def child_shape(config: AppConfig) -> tuple[str, bool]:
    """What the child was built for; a change of it needs a new child."""
    return (config.election.engine, any(s.announce in ("l2", "both") for s in config.services))


def vip_out(vip: L2Vip) -> dict[str, Any]:
    """L2Vip as JSON."""
    return {"address": str(vip.address), "interfaces": list(vip.interfaces), "group": vip.group}


def vip_in(data: dict[str, Any]) -> L2Vip:
    """L2Vip from JSON."""
    return L2Vip(ip_address(str(data["address"])),
                 tuple(str(i) for i in data["interfaces"]), str(data["group"]))


def leadership_out(lead: Leadership) -> dict[str, Any]:
    """Leadership as JSON (`since` is CLOCK_MONOTONIC: the same clock in both processes)."""
    return {"group": lead.group, "leader": lead.leader, "since": lead.since,
            "priority": lead.priority, "state": lead.state, "leader_id": lead.leader_id}


def leadership_in(data: dict[str, Any]) -> Leadership:
    """Leadership from JSON."""
    leader_id = data.get("leader_id")
    return Leadership(str(data["group"]), bool(data["leader"]), float(data["since"]),
                      int(data["priority"]), str(data["state"]),
                      None if leader_id is None else str(leader_id))
