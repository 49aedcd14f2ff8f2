"""`speaker plan -c NEW.yaml`: what a reload to NEW.yaml would do on this running
appliance, computed by the daemon from its live state, with nothing applied.

The candidate goes through the same steps as a reload up to the point where a
reload changes something: the isolated parse and validation, the parts diff
(`restart_required` paths), the config changes an operator reads (VIPs gained and
lost, services and peers changed), and then the reconciler's own planner run
against what the parts hold now (IPVS as known since the last dump, the addresses
on `lo`, the routes ExaBGP holds, the VIPs the responder owns). The operations are
those the first pass after the reload would carry out, given the backends' health
and the leadership as they are now. What the preview cannot know is listed under
`notes` (new backends are counted as not yet checked; a new election engine or new
groups start without leadership).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speaker.config import AppConfig, ConfigError, ConfigUnreadableError
from speaker.config.isolated import load_isolated
from speaker.parts import diff_parts, parts_for, restart_required
from speaker.reconcile.desired import Desired, compute_desired, leaving_services, with_leaving
from speaker.reconcile.plan import Observed, Op, Phase, plan
from speaker.reload_report import config_changes

if TYPE_CHECKING:
    from speaker.supervisor import Supervisor


@dataclass(frozen=True, slots=True)
class VipChange:
    """A VIP whose announcement (BGP or L2) the reload would change."""

    vip: str
    service: str
    mode: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"vip {self.vip} ({self.service}) {self.mode}: {self.before} -> {self.after}"


def _reasons(desired: Desired | None) -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for d in desired.decisions if desired is not None else ():
        out[(str(d.vip), d.service, "bgp")] = d.bgp.value
        out[(str(d.vip), d.service, "l2")] = d.l2.value
    return out


def vip_changes(before: Desired | None, after: Desired) -> list[VipChange]:
    """Per VIP and mechanism, the decision that moves (a service that appears or goes
    shows `absent` on the other side)."""
    old, new = _reasons(before), _reasons(after)
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "absent"), new.get(key, "absent")
        if a != b and not (a in ("absent", "not_announced_here")
                           and b in ("absent", "not_announced_here")):
            out.append(VipChange(key[0], key[1], key[2], a, b))
    return out


def describe_op(op: Op) -> dict[str, str]:
    """One planned operation, JSON-ready."""
    return {"phase": op.phase.name.lower(), "action": op.action, "target": op.target,
            "reason": op.reason}


def _notes(sup: Supervisor, config: AppConfig) -> list[str]:
    notes = []
    known = {(s.name, s.backend_label(b)) for s in sup.config.services for b in s.backends}
    fresh = sum(1 for s in config.services if s.health.type != "none" for b in s.backends
                if (s.name, s.backend_label(b)) not in known)
    if fresh:
        notes.append(f"{fresh} new backend(s) counted as not yet checked (down until their "
                     "first checks pass)")
    if config.election.engine != sup.config.election.engine:
        notes.append(f"election engine {sup.config.election.engine} -> "
                     f"{config.election.engine}: leadership shown is today's")
    new_groups = {g.name for g in config.election.groups} - {
        g.name for g in sup.config.election.groups}
    if new_groups:
        notes.append(f"new election group(s) {', '.join(sorted(new_groups))} start without "
                     "leadership")
    return notes


async def preview_reload(sup: Supervisor, path: Path) -> dict[str, Any]:
    """What reloading `path` would change; raises nothing for a bad candidate (the
    document says why it would be rejected)."""
    try:
        config = await load_isolated(path)
    except (ConfigError, ConfigUnreadableError) as exc:
        errors = [str(i) for i in exc.issues] if isinstance(exc, ConfigError) else [str(exc)]
        return {"path": str(path), "accepted": False, "reason": "invalid_config",
                "errors": errors}
    changes = diff_parts(sup.specs, parts_for(config))
    blocked = restart_required(changes)
    doc: dict[str, Any] = {
        "path": str(path), "accepted": not blocked,
        "reason": "restart_required" if blocked else "ok",
        "errors": [f"restart_required: {p}" for p in blocked],
        "parts": [str(c) for c in changes if c.action not in ("reconfigure", "restart_required")],
        "config": config_changes(sup.config, config),
    }
    if blocked:
        return doc
    rec = sup.reconciler
    now = time.monotonic()
    desired = compute_desired(config, rec.health.snapshot(), rec.election.leadership(),
                              rec.drains, now, appliance=rec.appliance,
                              shutting_down=rec.shutting_down)
    leaving = (*rec.leaving, *leaving_services(sup.config, config, now))
    if leaving:
        desired = with_leaving(desired, tuple(leaving), now)
    observed: Observed = await rec.observe(dump=False)
    if rec.parts.forwarder is None:  # announce-only: nothing to program
        observed = replace(observed, ipvs=desired.ipvs)
    ops = plan(desired, observed, rec.owner(desired))
    doc["vips"] = [str(c) for c in vip_changes(rec.desired, desired)]
    doc["operations"] = [describe_op(op) for op in ops]
    doc["counts"] = {phase.name.lower(): sum(1 for op in ops if op.phase is phase)
                     for phase in Phase if any(op.phase is phase for op in ops)}
    doc["notes"] = _notes(sup, config)
    return doc
