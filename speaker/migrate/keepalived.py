"""keepalived.conf -> an edge-speaker config, with every leftover listed by line.

vrrp_instance -> election groups (VRID, priority, advert_int, nopreempt, preempt_delay,
unicast peers and source, interface, track_interface -> self-check uplinks, notify_*
scripts -> hooks); virtual_server -> services (lb_algo, lb_kind, persistence, protocol,
delay_loop and the checker's timers); real_server -> backends (weight); TCP_CHECK,
HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK -> health checks. Whatever has no
counterpart (VRRPv2 authentication, vrrp_script, sorry_server, SMTP_CHECK, ...) is a
`Finding` with the keepalived file and line, so nothing is dropped silently.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_address, ip_interface, ip_network
from typing import Any

from speaker.migrate.kaconf import KaNode

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]")
LB_KIND = {"NAT": "nat", "DR": "dr", "TUN": "tunnel"}
SCHEDULERS = {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf",
              "mh", "twos"}
CHECKS = ("TCP_CHECK", "HTTP_GET", "SSL_GET", "MISC_CHECK", "DNS_CHECK", "SMTP_CHECK",
          "BFD_CHECK", "UDP_CHECK", "PING_CHECK", "FILE_CHECK")
NOTIFY = {"notify_master": "leader_gained", "notify_backup": "leader_lost",
          "notify_fault": "leader_lost", "notify_stop": "leader_lost"}
_INSTANCE_DONE = {"state", "interface", "virtual_router_id", "priority", "advert_int",
                  "nopreempt", "preempt_delay", "unicast_src_ip", "unicast_peer",
                  "virtual_ipaddress", "track_interface", *NOTIFY}
_VS_DONE = {"delay_loop", "lb_algo", "lvs_sched", "lb_kind", "lvs_method",
            "persistence_timeout", "persistence_granularity", "protocol", "real_server",
            "quorum"}


@dataclass(frozen=True, slots=True)
class Finding:
    """Something that was not carried over (or was changed on the way), and where."""

    where: str
    message: str


@dataclass(slots=True)
class Imported:
    """The edge-speaker config (a plain dict ready for YAML) and the findings."""

    config: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)


def _name(text: str, fallback: str) -> str:
    cleaned = _NAME_BAD.sub("-", text).strip("-_.")[:63]
    return cleaned if cleaned and cleaned[0].isalnum() else fallback


def _seconds(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


class _Importer:
    def __init__(self, tree: list[KaNode], name: str | None, router_id: str | None) -> None:
        self.tree = tree
        self.findings: list[Finding] = []
        self.node_name = name
        self.router_id = router_id
        self.interfaces: dict[str, str] = {}
        self.uplinks: list[str] = []
        self.groups: list[dict[str, Any]] = []
        self.vip_group: dict[str, str] = {}
        self.peers: list[str] = []
        self.source: str | None = None
        self.hooks: list[dict[str, Any]] = []
        self.services: list[dict[str, Any]] = []
        self.vrrp_version = 2

    def note(self, node: KaNode, message: str) -> None:
        self.findings.append(Finding(node.where(), message))

    def run(self) -> Imported:
        for node in self.tree:
            handler = {"global_defs": self.global_defs, "vrrp_instance": self.instance,
                       "virtual_server": self.virtual_server}.get(node.keyword)
            if handler is not None:
                handler(node)
            elif node.keyword in ("vrrp_script", "vrrp_sync_group", "virtual_server_group",
                                  "static_ipaddress", "static_routes", "linkbeat_use_polling"):
                self.note(node, f"{node.keyword} has no edge-speaker counterpart (health "
                          "checks and node.self_checks decide what is announced)")
            else:
                self.note(node, f"{node.keyword}: not carried over")
        if self.groups and self.vrrp_version != 3:
            self.findings.insert(0, Finding("global_defs", "keepalived speaks VRRPv2 unless "
                                            "vrrp_version 3 is set; edge-speaker speaks VRRPv3 "
                                            "(RFC 5798): set vrrp_version 3 on the keepalived "
                                            "peers before mixing them with edge-speaker"))
        return Imported(self.config(), self.findings)

    # -- sections ---------------------------------------------------------------------

    def global_defs(self, node: KaNode) -> None:
        for child in node.children:
            if child.keyword == "router_id" and child.args and self.node_name is None:
                self.node_name = _name(child.args[0], "lb1")
            elif child.keyword == "vrrp_version" and child.args:
                self.vrrp_version = int(child.args[0]) if child.args[0].isdigit() else 2
            elif child.keyword == "lvs_sync_daemon":
                self.note(child, "lvs_sync_daemon: connection sync is the dataplane's "
                          "business in edge-speaker (see docs/dataplane.md)")
            elif child.keyword not in ("vrrp_garp_master_delay", "vrrp_garp_master_repeat"):
                self.note(child, f"global_defs {child.keyword}: not carried over")

    def instance(self, node: KaNode) -> None:
        name = _name(node.args[0] if node.args else "", f"g{len(self.groups) + 1}")
        group = self._group(node, name)
        interface = group.get("interface")
        self._instance_transport(node)
        vips = node.find("virtual_ipaddress")
        for vip_node in vips.children if vips is not None else []:
            self._vip(vip_node, name, interface)
        track = node.find("track_interface")
        for t in track.children if track is not None else []:
            self.interfaces.setdefault(t.keyword, "both")
            if t.keyword not in self.uplinks:
                self.uplinks.append(t.keyword)
        for child in node.children:
            if child.keyword in NOTIFY and child.args:
                self._notify(child, NOTIFY[child.keyword], name)
            elif child.keyword == "state":
                self.note(child, "state is keepalived's starting state only; edge-speaker "
                          "elects by priority (the higher priority becomes master)")
            elif child.keyword == "authentication":
                self.note(child, "authentication is VRRPv2 only; VRRPv3 has none (use "
                          "election.vrrp.unicast_peers to accept adverts only from peers)")
            elif child.keyword not in _INSTANCE_DONE:
                self.note(child, f"vrrp_instance {child.keyword}: not carried over")
        self.groups.append(group)

    def _group(self, node: KaNode, name: str) -> dict[str, Any]:
        group: dict[str, Any] = {"name": name}
        vrid = node.value("virtual_router_id")
        if vrid is not None and vrid.isdigit():
            group["vrid"] = int(vrid)
        prio = node.value("priority")
        if prio is not None and prio.isdigit():
            group["priority"] = min(255, max(1, int(prio)))
        advert = _seconds(node.value("advert_int"))
        if advert is not None:
            group["advert_interval"] = f"{round(advert * 1000)}ms"
        if node.find("nopreempt") is not None:
            group["preempt"] = False
        delay = _seconds(node.value("preempt_delay"))
        if delay:
            group["preempt_delay"] = f"{delay:g}s"
        interface = node.value("interface")
        if interface is not None:
            group["interface"] = interface
            self.interfaces.setdefault(interface, "client")
        return group

    def _instance_transport(self, node: KaNode) -> None:
        src = node.value("unicast_src_ip")
        if src is not None:
            if self.source not in (None, src):
                self.note(node.find("unicast_src_ip") or node, "instances use different "
                          "unicast_src_ip; election.vrrp.source_address takes the first")
            self.source = self.source or src
            if self.router_id is None and isinstance(ip_address(src), IPv4Address):
                self.router_id = src
        peers = node.find("unicast_peer")
        for peer in peers.children if peers is not None else []:
            if peer.keyword not in self.peers:
                self.peers.append(peer.keyword)

    def _vip(self, node: KaNode, group: str, interface: str | None) -> None:
        try:
            address = str(ip_interface(node.keyword).ip)
        except ValueError:
            self.note(node, f"{node.keyword!r} is not an address")
            return
        self.vip_group[address] = group
        if "dev" in node.args:
            dev = node.args[node.args.index("dev") + 1:][:1]
            if dev and dev[0] != interface:
                self.interfaces.setdefault(dev[0], "client")
        if "label" in node.args or "scope" in node.args:
            self.note(node, f"{address}: address options {node.args} are not carried over "
                      "(edge-speaker keeps VIPs on lo and answers ARP/NDP itself)")

    def _notify(self, node: KaNode, event: str, group: str) -> None:
        try:
            argv = shlex.split(node.args[0]) if len(node.args) == 1 else list(node.args)
        except ValueError:
            self.note(node, f"{node.keyword}: cannot split {node.args[0]!r} into a command")
            return
        if not argv or not argv[0].startswith("/"):
            self.note(node, f"{node.keyword}: hooks need an absolute command path")
            return
        self.hooks.append({"on": event, "group": group, "command": argv})
        if node.keyword in ("notify_fault", "notify_stop"):
            self.note(node, f"{node.keyword} became a leader_lost hook (edge-speaker has no "
                      "fault/stop state)")

    def virtual_server(self, node: KaNode) -> None:
        if len(node.args) < 2 or node.args[0] == "fwmark" or node.args[0] == "group":
            self.note(node, "virtual_server by fwmark or group: write it as a fwmark "
                      "service by hand")
            return
        vip, port = node.args[0], node.args[1]
        try:
            address = str(ip_address(vip))
        except ValueError:
            self.note(node, f"virtual_server {vip!r} is not an address")
            return
        service: dict[str, Any] = {
            "name": _name(f"vs-{address.replace(':', '-')}-{port}", "vs"), "vip": address,
            "ports": [int(port)] if port.isdigit() else [], "announce": "l2"}
        group = self.vip_group.get(address)
        if group is not None:
            service["group"] = group
        else:
            self.note(node, f"{address} is in no vrrp_instance's virtual_ipaddress; the "
                      "service is announced by the default group")
        self._vs_options(node, service)
        backends, checks = self._real_servers(node, service)
        service["backends"] = backends
        service["health"] = self._health(node, checks)
        quorum = node.value("quorum")
        if quorum is not None and quorum.isdigit() and backends:
            service["quorum"] = {"min_healthy": min(int(quorum), len(backends))}
            self.note(node.find("quorum") or node, "quorum counts weights in keepalived and "
                      "healthy backends in edge-speaker: check quorum.min_healthy")
        for child in node.children:
            if child.keyword not in _VS_DONE:
                self.note(child, f"virtual_server {child.keyword}: not carried over")
        self.services.append(service)

    def _vs_options(self, node: KaNode, service: dict[str, Any]) -> None:
        algo = (node.value("lb_algo") or node.value("lvs_sched") or "wlc").lower()
        if algo in SCHEDULERS:
            service["scheduler"] = algo
        else:
            self.note(node, f"lb_algo {algo!r} is unknown; using wlc")
        kind = (node.value("lb_kind") or node.value("lvs_method") or "NAT").upper()
        service["forwarding"] = LB_KIND.get(kind, "nat")
        persist = _seconds(node.value("persistence_timeout"))
        if persist:
            service["persistence"] = {"timeout": f"{persist:g}s"}
            mask = node.value("persistence_granularity")
            if mask is not None:
                try:
                    service["persistence"]["netmask"] = ip_network(f"0.0.0.0/{mask}").prefixlen
                except ValueError:
                    self.note(node, f"persistence_granularity {mask!r} is not a netmask")
        protocol = (node.value("protocol") or "TCP").lower()
        if protocol in ("tcp", "udp", "sctp"):
            service["protocol"] = protocol

    def _real_servers(self, node: KaNode, service: dict[str, Any]
                      ) -> tuple[list[dict[str, Any]], list[KaNode]]:
        backends: list[dict[str, Any]] = []
        checks: list[KaNode] = []
        for rs in (c for c in node.children if c.keyword == "real_server"):
            if not rs.args:
                continue
            backend: dict[str, Any] = {"address": rs.args[0]}
            if len(rs.args) > 1 and rs.args[1].isdigit():
                backend["port"] = int(rs.args[1])
            weight = rs.value("weight")
            if weight is not None and weight.isdigit():
                backend["weight"] = int(weight)
            backends.append(backend)
            for child in rs.children:
                if child.keyword in CHECKS:
                    checks.append(child)
                elif child.keyword not in ("weight", "inhibit_on_failure"):
                    self.note(child, f"real_server {child.keyword}: not carried over")
        return backends, checks

    def _health(self, vs: KaNode, checks: list[KaNode]) -> dict[str, Any]:
        interval = _seconds(vs.value("delay_loop")) or 60.0
        health: dict[str, Any] = {"type": "none"}
        if not checks:
            return health
        first = checks[0]
        kinds = {c.keyword for c in checks}
        if len(kinds) > 1:
            self.note(vs, f"real servers use different checks {sorted(kinds)}; edge-speaker "
                      f"checks every backend of a service the same way ({first.keyword})")
        mapping = {"TCP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https",
                   "MISC_CHECK": "exec", "DNS_CHECK": "dns"}
        kind = mapping.get(first.keyword)
        if kind is None:
            self.note(first, f"{first.keyword} has no edge-speaker counterpart; using tcp")
            kind = "tcp"
        health = {"type": kind, "interval": f"{interval:g}s"}
        timeout = _seconds(first.value("connect_timeout") or first.value("misc_timeout"))
        if timeout is not None:
            health["timeout"] = f"{min(timeout, interval * 0.8):g}s"
            if timeout >= interval:
                self.note(first, f"timeout {timeout:g}s is not shorter than delay_loop "
                          f"{interval:g}s; set to {interval * 0.8:g}s")
        retry = first.value("retry") or first.value("nb_get_retry")
        if retry is not None and retry.isdigit():
            health["fall"] = max(1, min(100, int(retry)))
        port = first.value("connect_port")
        if port is not None and port.isdigit():
            health["port"] = int(port)
        if kind in ("http", "https"):
            health["http"] = self._http(first)
        elif kind == "exec":
            path = first.value("misc_path") or "/bin/false"
            health["exec"] = {"command": shlex.split(path)}
        return health

    def _http(self, check: KaNode) -> dict[str, Any]:
        url = check.find("url")
        params: dict[str, Any] = {}
        if url is not None:
            params["path"] = url.value("path") or "/"
            status = url.value("status_code")
            if status is not None:
                params["expect_status"] = [status]
            if url.find("digest") is not None:
                self.note(url, "url digest (MD5 of the body) is not carried over; use "
                          "http.body_regex")
        host = check.value("virtualhost")
        if host is not None:
            params["host"] = host
        return params

    # -- output -----------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        interfaces = [{"name": n, "role": r} for n, r in self.interfaces.items()] or [
            {"name": "eth0", "role": "client"}]
        node: dict[str, Any] = {"name": self.node_name or "lb1",
                                "router_id": self.router_id or "192.0.2.1",
                                "interfaces": interfaces}
        if self.uplinks:
            node["self_checks"] = {"uplinks": self.uplinks}
        election: dict[str, Any] = {"engine": "vrrp" if self.groups else "single"}
        if self.groups:
            election["groups"] = self.groups
            vrrp: dict[str, Any] = {"interface": interfaces[0]["name"]}
            if self.peers:
                vrrp["unicast_peers"] = self.peers
            if self.source:
                vrrp["source_address"] = self.source
            election["vrrp"] = vrrp
            if any(s.get("group") is None for s in self.services):
                self.groups.append({"name": "default", "vrid": _free_vrid(self.groups)})
        out: dict[str, Any] = {"node": node, "election": election, "services": self.services}
        if self.hooks:
            out["hooks"] = self.hooks
        return out


def _free_vrid(groups: list[dict[str, Any]]) -> int:
    used = {g.get("vrid") for g in groups}
    return next(v for v in range(1, 256) if v not in used)


def import_keepalived(tree: list[KaNode], *, name: str | None = None,
                      router_id: str | None = None) -> Imported:
    """Map a parsed keepalived.conf to an edge-speaker config dict plus findings."""
    return _Importer(tree, name, router_id).run()
