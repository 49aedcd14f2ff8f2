"""The status document behind `speaker status` and the API's `status` command.

Built from one :class:`speaker.status_index.StatusIndex` per call, so the cost is
linear in services + backends; the document is made of sections (`head_sections`,
one `vip_row` per VIP, `tail_sections`) that the API can also build and encode
slice by slice without holding the supervisor's loop (speaker.api.status_body)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from speaker.model import Reason, VipDecision
from speaker.status_index import ANNOUNCEMENT_ATTRIBUTES, ServiceView, StatusIndex, take_index

if TYPE_CHECKING:
    from speaker.supervisor import Supervisor

_ON = (Reason.ANNOUNCED, Reason.BACKUP_ROUTE, Reason.FAIL_OPEN)


def backend_rows(index: StatusIndex, view: ServiceView | None,
                 decision: VipDecision) -> list[dict[str, Any]]:
    """One row per backend of the decision: state, IPVS weight, connections, check."""
    service = decision.service
    weights: dict[str, int | None] = {}
    for label, key in view.backends if view is not None else ():
        weights.setdefault(label, index.weight(key))
    counters = index.counters.get(service)
    now = index.now
    out = []
    for label, reason in decision.backends.items():
        verdict = index.health.get((service, label))
        out.append({
            "backend": label,
            "state": reason.value,
            "weight": weights.get(label),
            "connections": counters.backends.get(label) if counters else None,
            "stats": counters.backend_stats.get(label) if counters else None,
            "check": None if verdict is None else {
                "up": verdict.up, "reason": verdict.reason, "latency": verdict.latency,
                "since_s": round(now - verdict.since, 3),
                "last_ok": verdict.last_ok},
        })
    return out


def _l2_reason(decided: Reason, owned: bool, vip: str, yielded: frozenset[str]) -> str:
    """What is true on the wire: a decided VIP that the responder yielded to another
    owner (duplicate-owner rule) says so; one not (yet) answered says `pending`."""
    if decided in _ON and not owned:
        return "yielded_to_other_owner" if vip in yielded else "pending"
    return decided.value


def _bgp_reason(decided: Reason, announced: bool) -> str:
    """`pending` while a decided route is not (yet) acked by the speaker."""
    return "pending" if decided in _ON and not announced else decided.value


def vip_row(index: StatusIndex, d: VipDecision) -> dict[str, Any]:
    """The status of one VIP: decision, what BGP and L2 really do, backends."""
    view = index.services.get(d.service)
    ann = index.announced.get(d.vip)
    owned = index.owned.get(d.vip)
    vip = view.vip if view is not None and view.address == d.vip else str(d.vip)
    return {
        "service": d.service,
        "vip": vip,
        "announce": view.announce if view else None,
        "group": view.group if view else None,
        "leader": d.leader,
        "healthy": d.healthy,
        "total": d.total,
        "quorum": dict(view.quorum) if view else None,
        "fail_open": d.fail_open,
        "bgp": {"reason": _bgp_reason(d.bgp, ann is not None), "decided": d.bgp.value,
                "desired": d.bgp in _ON,
                "announced": ann is not None,
                "to": index.sent_to_peers(ann) if ann else [],
                "attributes": None if ann is None else {
                    k: getattr(ann, k) for k in ANNOUNCEMENT_ATTRIBUTES}},
        "l2": {"reason": _l2_reason(d.l2, owned is not None, vip, index.yielded),
               "decided": d.l2.value, "desired": d.l2 in _ON, "owned": owned is not None,
               "interfaces": list(owned.interfaces) if owned is not None else [],
               "conflict": index.conflicts.get(vip)},
        "ipvs": ipvs_row(index, d.service),
        "backends": backend_rows(index, view, d),
    }


def ipvs_row(index: StatusIndex, service: str) -> dict[str, Any] | None:
    """Scheduler, forwarding method and the service's IPVS counters and rates (summed
    over its ports), as `ipvsadm -Ln --stats --rate` shows them by address."""
    view = index.services.get(service)
    if view is None:
        return None
    c = index.counters.get(service)
    row: dict[str, Any] = {"scheduler": view.scheduler, "forwarding": view.forwarding}
    if c is not None:
        row.update(connections=c.connections, packets_in=c.packets_in,
                   packets_out=c.packets_out, bytes_in=c.bytes_in, bytes_out=c.bytes_out,
                   cps=c.cps, bps_in=c.bps_in, bps_out=c.bps_out)
    return row


def vip_reasons(vip: dict[str, Any]) -> list[str]:
    """Why one VIP row makes the appliance `degraded` (empty: it does not)."""
    return [f"{mode}:{vip['vip']}:{vip[mode]['reason']}" for mode in ("bgp", "l2")
            if vip[mode]["reason"] in ("pending", "yielded_to_other_owner")]


def health_verdict(doc: dict[str, Any], vips: list[str] | None = None
                   ) -> tuple[str, list[str]]:
    """`healthy`, `degraded` or `unhealthy`, with the reasons (drives the exit code of
    `speaker status`: 0 healthy, 1 otherwise). `vips`: the VIP rows' reasons
    (:func:`vip_reasons`) when `doc` does not hold the rows themselves."""
    reasons: list[str] = []
    if not doc["ready"]:
        reasons.append("not_ready")
    app = doc["appliance"]
    if not app["healthy"]:
        return "unhealthy", reasons + [f"appliance:{r}" for r in app["reasons"]]
    last = doc["reconcile"]["last"]
    if last is not None and not last["ok"]:
        reasons.append("reconcile_errors")
    if not doc["config"]["last_reload"]["ok"]:
        reasons.append("last_reload_rejected")
    if vips is None:
        vips = [r for vip in doc["vips"] for r in vip_reasons(vip)]
    reasons += vips
    reasons += [f"peer_down:{p['name']}" for p in doc["peers"] if p["state"] != "up"]
    reasons += [f"bfd_down:{p['name']}" for p in doc["peers"] if p.get("path") == "suspect"]
    reasons += [f"sysctl:{m['name']}" for m in doc["sysctls"]["mismatches"]]
    return ("degraded" if reasons else "healthy"), reasons


def _peers(sup: Supervisor) -> list[dict[str, Any]]:
    """BGP sessions, each with its BFD session (None when the peer has no BFD).

    `path` is `suspect` (reason `bfd_down`) when BFD is wanted but not Up: the router
    has, or soon will have, dropped the routes through this appliance, whatever BGP
    shows. Nothing is withdrawn for it: the router acts on BFD by itself."""
    bgp = sup.built.parts.bgp
    bfd = sup.built.bfd.sessions() if sup.built.bfd is not None else {}
    out = []
    for name, peer in (bgp.sessions().items() if bgp else []):
        row: dict[str, Any] = asdict(peer)
        session = bfd.get(name)
        row["bfd"] = None if session is None else {
            "state": session.state, "diag": session.diag, "remote_diag": session.remote_diag,
            "changes": session.changes, "multihop": session.multihop,
            "min_tx_ms": session.min_tx_ms, "min_rx_ms": session.min_rx_ms,
            "multiplier": session.multiplier}
        suspect = session is not None and session.state != "up"
        row["path"] = "suspect" if suspect else "ok"
        row["path_reason"] = "bfd_down" if suspect else None
        out.append(row)
    return out


def head_sections(sup: Supervisor, index: StatusIndex) -> dict[str, Any]:
    """The sections before `vips` (small: node, readiness, config, appliance)."""
    from speaker.supervisor import package_version

    rec = sup.reconciler
    return {
        "node": sup.config.node.name,
        "version": package_version(),
        "uptime_s": round(index.now - sup.started, 1),
        "ready": rec.last_success is not None,
        "config": {"path": str(sup.config_path), "last_reload": sup.last_reload},
        "appliance": {"healthy": rec.appliance.healthy, "reasons": list(rec.appliance.reasons),
                      "drains": rec.drains.as_dict(), "shutting_down": rec.shutting_down},
    }


def tail_sections(sup: Supervisor, index: StatusIndex,
                  components: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sections after `vips`: peers, election, reconcile, components, parts, sysctls.
    `components` holds each running part's own status (the health checker's has one
    entry per backend); pass it in when it was read already."""
    rec = sup.reconciler
    last = rec.last
    guard = sup.objects.get("sysctls")
    sysctls = guard.status() if guard is not None and hasattr(guard, "status") else {}
    return {
        "peers": _peers(sup),
        "election": {g: asdict(lead) for g, lead in sup.built.election.leadership().items()},
        "reconcile": {"passes": rec.passes, "last": None if last is None else {
            "ok": last.ok, "ops": last.ops, "duration_s": round(last.duration, 6),
            "age_s": round(index.now - last.finished, 3), "errors": last.errors}},
        "components": (components if components is not None else
                       {component_name(c): c.status() for c in sup.components()}),
        "parts": {k: {"variant": v.variant, "running": k in sup.objects or not v.component}
                  for k, v in sup.specs.items()},
        "sysctls": {"managed": sup.config.dataplane.manage_sysctls,
                    "mismatches": list(sysctls.get("mismatches", []))},
    }


def component_name(component: object) -> str:
    """The key of a part's own status under `components`."""
    return str(getattr(component, "status_name", type(component).__name__))


def status_document(sup: Supervisor) -> dict[str, Any]:
    """Everything `speaker status` shows, JSON-ready, built in one go (the API builds
    the same document slice by slice: speaker.api.status_body)."""
    index = take_index(sup)
    doc = head_sections(sup, index)
    doc["vips"] = [vip_row(index, d) for d in index.decisions]
    doc.update(tail_sections(sup, index))
    state, reasons = health_verdict(doc)
    doc["health"] = {"state": state, "reasons": reasons}
    return doc
