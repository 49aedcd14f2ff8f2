"""The status document behind `speaker status` and the API's `status` command."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from speaker.model import Reason

if TYPE_CHECKING:
    from speaker.supervisor import Supervisor

_ON = (Reason.ANNOUNCED, Reason.BACKUP_ROUTE, Reason.FAIL_OPEN)


def _backends(sup: Supervisor, service: str, reasons: dict[str, Reason]) -> list[dict[str, Any]]:
    health = sup.built.health.snapshot()
    svc = sup.config.service(service)
    weights: dict[str, int] = {}
    desired = sup.reconciler.desired
    if desired is not None and svc is not None:
        for dest in desired.ipvs.dests.values():
            for b in svc.backends:
                if dest.key.address == b.address and dest.key.service.address == svc.vip:
                    weights.setdefault(svc.backend_label(b), dest.weight)
    counters = sup.ipvs_stats.latest.get(service) if sup.ipvs_stats else None
    out = []
    for label, reason in reasons.items():
        verdict = health.get((service, label))
        out.append({
            "backend": label,
            "state": reason.value,
            "weight": weights.get(label),
            "connections": counters.backends.get(label) if counters else None,
            "check": None if verdict is None else {
                "up": verdict.up, "reason": verdict.reason, "latency": verdict.latency,
                "since_s": round(time.monotonic() - verdict.since, 3),
                "last_ok": verdict.last_ok},
        })
    return out


def _strings(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _l2_reason(decided: Reason, owned: bool, vip: str, yielded: set[str]) -> str:
    """What is true on the wire: a decided VIP that the responder yielded to another
    owner (duplicate-owner rule) says so; one not (yet) answered says `pending`."""
    if decided in _ON and not owned:
        return "yielded_to_other_owner" if vip in yielded else "pending"
    return decided.value


def _bgp_reason(decided: Reason, announced: bool) -> str:
    """`pending` while a decided route is not (yet) acked by the speaker."""
    return "pending" if decided in _ON and not announced else decided.value


def _vips(sup: Supervisor) -> list[dict[str, Any]]:
    desired = sup.reconciler.desired
    if desired is None:
        return []
    parts = sup.built.parts
    announced = {a.prefix.network_address: a for a in parts.bgp.announced()} if parts.bgp else {}
    sent_to = parts.bgp.announced_to() if parts.bgp else {}
    owned = {v.address: v for v in parts.l2.owned()} if parts.l2 else {}
    l2_detail = parts.l2.status() if parts.l2 else {}
    yielded = set(_strings(l2_detail.get("yielded")))
    conflicts = {str(c.get("vip")): c for c in _dicts(l2_detail.get("conflicts"))}
    peers = sorted(parts.bgp.sessions()) if parts.bgp else []
    vips = []
    for d in desired.decisions:
        svc = sup.config.service(d.service)
        ann = announced.get(d.vip)
        vips.append({
            "service": d.service,
            "vip": str(d.vip),
            "announce": svc.announce if svc else None,
            "group": svc.group if svc else None,
            "leader": d.leader,
            "healthy": d.healthy,
            "total": d.total,
            "quorum": ({"min_healthy": svc.quorum.min_healthy, "below": svc.quorum.below}
                       if svc else None),
            "fail_open": d.fail_open,
            "bgp": {"reason": _bgp_reason(d.bgp, ann is not None), "decided": d.bgp.value,
                    "desired": d.bgp in _ON,
                    "announced": ann is not None,
                    "to": ([n for n, anns in sorted(sent_to.items()) if ann in anns]
                           or list(ann.peers or peers)) if ann else [],
                    "attributes": None if ann is None else {
                        k: v for k, v in asdict(ann).items() if k not in ("prefix", "peers")}},
            "l2": {"reason": _l2_reason(d.l2, d.vip in owned, str(d.vip), yielded),
                   "decided": d.l2.value, "desired": d.l2 in _ON, "owned": d.vip in owned,
                   "interfaces": list(owned[d.vip].interfaces) if d.vip in owned else [],
                   "conflict": conflicts.get(str(d.vip))},
            "backends": _backends(sup, d.service, d.backends),
        })
    return vips


def health_verdict(doc: dict[str, Any]) -> tuple[str, list[str]]:
    """`healthy`, `degraded` or `unhealthy`, with the reasons (drives the exit code of
    `speaker status`: 0 healthy, 1 otherwise)."""
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
    reasons += [f"{mode}:{vip['vip']}:{vip[mode]['reason']}" for vip in doc["vips"]
                for mode in ("bgp", "l2")
                if vip[mode]["reason"] in ("pending", "yielded_to_other_owner")]
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


def status_document(sup: Supervisor) -> dict[str, Any]:
    """Everything `speaker status` shows, JSON-ready."""
    rec = sup.reconciler
    last = rec.last
    from speaker.supervisor import package_version

    guard = sup.objects.get("sysctls")
    sysctls = guard.status() if guard is not None and hasattr(guard, "status") else {}
    doc: dict[str, Any] = {
        "node": sup.config.node.name,
        "version": package_version(),
        "uptime_s": round(time.monotonic() - sup.started, 1),
        "ready": rec.last_success is not None,
        "config": {"path": str(sup.config_path), "last_reload": sup.last_reload},
        "appliance": {"healthy": rec.appliance.healthy, "reasons": list(rec.appliance.reasons),
                      "drains": rec.drains.as_dict(), "shutting_down": rec.shutting_down},
        "vips": _vips(sup),
        "peers": _peers(sup),
        "election": {g: asdict(lead) for g, lead in sup.built.election.leadership().items()},
        "reconcile": {"passes": rec.passes, "last": None if last is None else {
            "ok": last.ok, "ops": last.ops, "duration_s": round(last.duration, 6),
            "age_s": round(time.monotonic() - last.finished, 3), "errors": last.errors}},
        "components": {getattr(c, "status_name", type(c).__name__): c.status()
                       for c in sup.components()},
        "parts": {k: {"variant": v.variant, "running": k in sup.objects or not v.component}
                  for k, v in sup.specs.items()},
        "sysctls": {"managed": sup.config.dataplane.manage_sysctls,
                    "mismatches": list(sysctls.get("mismatches", []))},
    }
    state, reasons = health_verdict(doc)
    doc["health"] = {"state": state, "reasons": reasons}
    return doc
