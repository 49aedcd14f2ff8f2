"""Plain-text rendering of the status document for `speaker status`."""

from __future__ import annotations

from typing import Any


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _where(vip: dict[str, Any]) -> str:
    out = []
    if vip["bgp"]["announced"]:
        peers = ",".join(vip["bgp"]["to"]) or "all peers"
        out.append(f"bgp->{peers}")
    elif vip["bgp"].get("desired"):
        out.append("bgp:unsent")  # decided, but no router has it yet (no session up)
    if vip["l2"]["owned"]:
        out.append("l2@" + ",".join(vip["l2"]["interfaces"]))
    return " ".join(out) or "-"


def _reason(vip: dict[str, Any]) -> str:
    parts = []
    if vip["bgp"]["reason"] != "not_announced_here":
        parts.append(f"bgp:{vip['bgp']['reason']}")
    if vip["l2"]["reason"] != "not_announced_here":
        parts.append(f"l2:{vip['l2']['reason']}")
    return " ".join(parts)


def _bfd(bfd: dict[str, Any] | None) -> str:
    if bfd is None:
        return "-"
    timers = f"{bfd['min_tx_ms']}ms x{bfd['multiplier']}"
    why = f" ({bfd['diag']})" if bfd["state"] != "up" and bfd["diag"] != "none" else ""
    return f"{bfd['state']}{why} {timers}{' multihop' if bfd['multihop'] else ''}"


def _num(value: object) -> str:
    """A counter for a table: `-` when IPVS does not report it (announce-only)."""
    if not isinstance(value, int):
        return "-"
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= size * 10:
            return f"{value // size}{unit}"
    return str(value)


def _vip_table(doc: dict[str, Any]) -> list[str]:
    """One row per VIP: decision, announcement and IPVS counters."""
    rows = [["SERVICE", "VIP", "HEALTHY", "LEADER", "ANNOUNCED", "REASON", "IPVS",
             "CONNS", "CPS", "IN/OUT B/s"]]
    for vip in doc["vips"]:
        healthy = f"{vip['healthy']}/{vip['total']}"
        if vip["quorum"]:
            healthy += f" (quorum {vip['quorum']['min_healthy']}, {vip['quorum']['below']})"
        ipvs = vip.get("ipvs") or {}
        rows.append([vip["service"], vip["vip"], healthy, "yes" if vip["leader"] else "no",
                     _where(vip), _reason(vip),
                     f"{ipvs['scheduler']}/{ipvs['forwarding']}" if ipvs else "-",
                     _num(ipvs.get("connections")), _num(ipvs.get("cps")),
                     f"{_num(ipvs.get('bps_in'))}/{_num(ipvs.get('bps_out'))}"
                     if "bps_in" in ipvs else "-"])
    return _table(rows)


def _backend_table(doc: dict[str, Any]) -> list[str]:
    """One row per backend: state, weight, check, connections."""
    rows = [["SERVICE", "BACKEND", "STATE", "WEIGHT", "CHECK", "LATENCY",
             "ACTIVE/INACT", "CONNS", "CPS"]]
    for vip in doc["vips"]:
        for b in vip["backends"]:
            check = b["check"]
            conns = b.get("connections") or {}
            stats = b.get("stats") or {}
            rows.append([vip["service"], b["backend"], b["state"],
                         "-" if b["weight"] is None else str(b["weight"]),
                         "-" if check is None else check["reason"],
                         "-" if not check or check["latency"] is None
                         else f"{check['latency'] * 1000:.1f}ms",
                         f"{conns['active']}/{conns['inactive']}" if conns else "-",
                         _num(stats.get("connections")), _num(stats.get("cps"))])
    return _table(rows)


def render_status(doc: dict[str, Any], backends: bool = True) -> str:
    """Human-readable status."""
    lines = [f"node {doc['node']}  version {doc['version']}  up {doc['uptime_s']}s  "
             f"ready {'yes' if doc['ready'] else 'no'}"]
    app = doc["appliance"]
    health = "healthy" if app["healthy"] else "UNHEALTHY (" + ", ".join(app["reasons"]) + ")"
    drains = app["drains"]
    drained = " DRAINED" if drains["appliance"] else ""
    lines.append(f"appliance {health}{drained}")
    verdict = doc.get("health")
    if verdict and verdict["state"] != "healthy":
        lines.append(f"status {verdict['state'].upper()}: " + ", ".join(verdict["reasons"]))
    lines += [f"sysctl {m['name']} is {m['have']}, want {m['want']}: {m['reason']}"
              for m in doc.get("sysctls", {}).get("mismatches", [])]
    reload = doc["config"]["last_reload"]
    if not reload["ok"]:
        lines.append("last reload REJECTED (running config kept):")
        lines += [f"  {e}" for e in reload["errors"]]
    lines.append("")
    lines.append("VIPs:")
    lines += _vip_table(doc)
    if backends:
        lines.append("")
        lines.append("Backends:")
        lines += _backend_table(doc)
    if doc["peers"]:
        lines.append("")
        lines.append("BGP peers:")
        rows = [["PEER", "ADDRESS", "STATE", "PREFIXES", "REASON", "BFD", "PATH"]]
        rows += [[p["name"], p["address"], p["state"], str(p["announced"]), p["reason"],
                  _bfd(p.get("bfd")), p.get("path", "ok")] for p in doc["peers"]]
        lines += _table(rows)
        lines += [f"  {p['name']}: {p['detail']}" for p in doc["peers"] if p.get("detail")]
    if doc["election"]:
        lines.append("")
        lines.append("Election:")
        rows = [["GROUP", "LEADER", "STATE", "PRIORITY", "HOLDER"]]
        rows += [[g, "yes" if e["leader"] else "no", e["state"] or "-", str(e["priority"]),
                  e.get("leader_id") or "-"]
                 for g, e in sorted(doc["election"].items())]
        lines += _table(rows)
        lines += _etcd_lines(doc.get("components", {}).get("EtcdElection"))
    last = doc["reconcile"]["last"]
    if last:
        lines.append("")
        lines.append(f"reconcile: {doc['reconcile']['passes']} passes, last "
                     f"{'ok' if last['ok'] else 'FAILED'} {last['ops']} ops "
                     f"{last['duration_s'] * 1000:.1f}ms, {last['age_s']}s ago")
        lines += [f"  error: {e}" for e in last["errors"]]
    return "\n".join(lines)


def _etcd_lines(etcd: dict[str, Any] | None) -> list[str]:
    """The etcd engine's connection, lease and fencing tokens (engine etcd only)."""
    if not etcd:
        return []
    lines = [f"  etcd: {etcd['endpoint']} {etcd['reason']}, lease {etcd['lease'] or '-'}, "
             f"may lead for {etcd['may_lead_for_s']}s"]
    if etcd.get("last_error"):
        lines.append(f"  etcd error: {etcd['last_error']}")
    lines += [f"  {g}: fencing token {e['fencing_token']}"
              for g, e in sorted(etcd["groups"].items()) if e.get("fencing_token")]
    return lines
