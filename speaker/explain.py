"""`speaker explain VIP`: why this VIP is, or is not, announced here, with every
link of the chain (config, backends, quorum, drains, appliance health, election,
then what each mechanism really holds: BGP sessions and routes sent, L2
ownership, IPVS, DNS).

Built by the daemon for one VIP from its live state, so it costs one service's
worth of work however large the config is. Each step is (check, ok, detail); the
verdict names the first reason that keeps the VIP from being announced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from speaker.config.service import ServiceConfig
from speaker.model import Reason, VipDecision

if TYPE_CHECKING:
    from speaker.supervisor import Supervisor

ON = (Reason.ANNOUNCED, Reason.BACKUP_ROUTE, Reason.FAIL_OPEN)


@dataclass(frozen=True, slots=True)
class Step:
    """One link of the chain."""

    check: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


def _backends(sup: Supervisor, svc: ServiceConfig, d: VipDecision) -> Step:
    health = sup.built.health.snapshot()
    parts = []
    for label, reason in d.backends.items():
        verdict = health.get((svc.name, label))
        why = "" if verdict is None or verdict.up else f": {verdict.reason}"
        if verdict is None and svc.health.type != "none":
            why = ": not checked yet"
        parts.append(f"{label} {reason.value.removeprefix('backend_')}{why}")
    return Step("backends", d.healthy > 0 or d.total == 0,
                f"{d.healthy} of {d.total} healthy ({'; '.join(parts) or 'none configured'})")


def _quorum(svc: ServiceConfig, d: VipDecision) -> Step:
    q = svc.quorum
    ok = (d.healthy >= q.min_healthy and (d.healthy > 0 or q.min_healthy == 0)) or d.fail_open
    detail = f"needs {q.min_healthy} healthy, has {d.healthy}; below quorum: {q.below}"
    if d.fail_open:
        detail += " (failing open: announced although below quorum)"
    return Step("quorum", ok, detail)


def _drains(sup: Supervisor, svc: ServiceConfig) -> Step:
    drains = sup.reconciler.drains
    if drains.appliance is not None:
        return Step("drain", False, "the appliance is drained (speaker undrain)")
    if svc.name in drains.services:
        return Step("drain", False, f"service {svc.name} is drained "
                                    f"(speaker undrain --service {svc.name})")
    return Step("drain", True, "not drained")


def _appliance(sup: Supervisor) -> Step:
    rec = sup.reconciler
    if rec.shutting_down:
        return Step("appliance", False, "shutting down")
    if not rec.appliance.healthy:
        return Step("appliance", False, "unhealthy: " + ", ".join(rec.appliance.reasons))
    return Step("appliance", True, "healthy")


def _election(sup: Supervisor, svc: ServiceConfig, d: VipDecision) -> Step:
    lead = sup.built.election.leadership().get(svc.group)
    engine = sup.config.election.engine
    if lead is None:
        return Step("election", False, f"group {svc.group} ({engine}): no verdict yet")
    who = f", leader {lead.leader_id}" if lead.leader_id and not lead.leader else ""
    state = f" {lead.state}" if lead.state and lead.state != engine else ""
    since = round(time.monotonic() - lead.since, 1)
    # active-active BGP announces from every healthy appliance: leadership only
    # matters to L2, active-backup and the sync daemon there
    needed = svc.announce in ("l2", "both") or d.bgp is Reason.BACKUP_ROUTE
    return Step("election", lead.leader or not needed,
                f"group {svc.group} ({engine}{state}): {'leader' if lead.leader else 'not leader'}"
                f"{who}, priority {lead.priority}, for {since} s")


def _bgp(sup: Supervisor, svc: ServiceConfig, d: VipDecision) -> list[Step]:
    bgp = sup.built.parts.bgp
    if svc.announce not in ("bgp", "both") or bgp is None:
        return []
    steps = [Step("bgp decision", d.bgp in ON, d.bgp.value)]
    sent = bgp.announced_to()
    bfd = sup.built.bfd.sessions() if sup.built.bfd is not None else {}
    for name, peer in sorted(bgp.sessions().items()):
        has = any(a.prefix.network_address == svc.vip for a in sent.get(name, ()))
        detail = f"session {peer.state} ({peer.reason}); route {'sent' if has else 'not sent'}"
        session = bfd.get(name)
        if session is not None:
            detail += f"; bfd {session.state}"
        up = peer.state == "up" and (session is None or session.state == "up")
        steps.append(Step(f"bgp peer {name}", has and up if d.bgp in ON else not has, detail))
    return steps


def _l2(sup: Supervisor, svc: ServiceConfig, d: VipDecision) -> list[Step]:
    l2 = sup.built.parts.l2
    if svc.announce not in ("l2", "both") or l2 is None:
        return []
    owned = any(v.address == svc.vip for v in l2.owned())
    detail = l2.status()
    raw = detail.get("yielded")
    yielded = isinstance(raw, list) and str(svc.vip) in [str(v) for v in raw]
    text = f"decided {d.l2.value}; {'owned (answering ARP/NDP)' if owned else 'not owned'}"
    if yielded:
        text += "; yielded to another owner (duplicate-owner rule)"
    return [Step("l2", owned if d.l2 in ON else not owned, text)]


def _ipvs(sup: Supervisor, svc: ServiceConfig) -> list[Step]:
    forwarder = sup.built.parts.forwarder
    if forwarder is None:
        return []
    table = forwarder.known()
    mine = [s for s in table.services if s.address == svc.vip]
    if not mine:
        return [Step("ipvs", False, "no IPVS service programmed for this VIP")]
    dests = [d for d in table.dests.values() if d.key.service in mine]
    live = sum(1 for d in dests if d.weight > 0)
    return [Step("ipvs", live > 0, f"{len(mine)} service(s), {len(dests)} destination(s), "
                                   f"{live} with weight > 0")]


def _dns(sup: Supervisor, svc: ServiceConfig) -> list[Step]:
    if svc.dns is None:
        return []
    dns = sup.reconciler.parts.dns
    names: dict[str, Any] = {}
    if dns is not None:
        raw = dns.status().get("names", {})
        names = raw if isinstance(raw, dict) else {}
    return [Step(f"dns {n}", names.get(n, {}).get("state") == "published",
                 str(names.get(n, {}).get("state", "unknown"))) for n in svc.dns.names]


def _verdict(d: VipDecision, steps: list[Step]) -> str:
    on = [m for m, r in (("bgp", d.bgp), ("l2", d.l2)) if r in ON]
    failing = [s for s in steps if not s.ok]
    if on and not failing:
        return "announced here (" + ", ".join(on) + ")"
    if on:
        return f"decided to announce ({', '.join(on)}) but {failing[0].check}: {failing[0].detail}"
    reasons = {r.value for r in (d.bgp, d.l2) if r is not Reason.NOT_ANNOUNCED_HERE}
    first = f"; first failing check: {failing[0].check}" if failing else ""
    return f"not announced here: {', '.join(sorted(reasons)) or 'no mechanism'}{first}"


def explain(sup: Supervisor, vip: str) -> dict[str, Any]:
    """The chain for every service of this VIP; ValueError if it is not configured."""
    try:
        address = ip_address(vip.split("/", maxsplit=1)[0])
    except ValueError:
        raise ValueError(f"{vip!r} is not an IP address") from None
    services = [s for s in sup.config.services if s.vip == address]
    if not services:
        raise ValueError(f"{address} is not the VIP of any service on this appliance")
    desired = sup.reconciler.desired
    decisions = {d.service: d for d in desired.decisions} if desired is not None else {}
    out: list[dict[str, Any]] = []
    for svc in services:
        d = decisions.get(svc.name)
        if d is None:
            out.append({"service": svc.name, "verdict": "no reconcile pass has decided yet",
                        "steps": []})
            continue
        steps = [Step("configured", True, f"service {svc.name}, announce {svc.announce}, "
                                          f"group {svc.group}"),
                 _backends(sup, svc, d), _quorum(svc, d), _drains(sup, svc), _appliance(sup),
                 _election(sup, svc, d), *_bgp(sup, svc, d), *_l2(sup, svc, d),
                 *_ipvs(sup, svc), *_dns(sup, svc)]
        out.append({"service": svc.name, "announced": any(r in ON for r in (d.bgp, d.l2))
                    and all(s.ok for s in steps),
                    "verdict": _verdict(d, steps), "steps": [s.as_dict() for s in steps]})
    return {"vip": str(address), "services": out}
