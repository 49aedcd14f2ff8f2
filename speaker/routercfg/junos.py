"""Junos rendering of the router-side model: hierarchical config for `load merge`."""

from __future__ import annotations

from speaker.routercfg.common import exact_host, header_lines, policy_families, quoted
from speaker.routercfg.model import Family, Neighbor, Router, RouterConfigModel

EXPORT_POLICY = "EDGE-SPEAKER-OUT"
ECMP_POLICY = "EDGE-SPEAKER-ECMP"
JUNOS_FAMILY = {"ipv4-unicast": "inet", "ipv6-unicast": "inet6"}
DEFAULT_NET = {"ipv4-unicast": "0.0.0.0/0", "ipv6-unicast": "::/0"}


class _Tree:
    """Indented `name { ... }` blocks, four spaces a level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def open(self, name: str) -> None:
        self.lines.append(f"{'    ' * self.depth}{name} {{")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.lines.append(f"{'    ' * self.depth}}}")

    def leaf(self, text: str) -> None:
        self.lines.append(f"{'    ' * self.depth}{text};")


def render(model: RouterConfigModel, router: Router) -> str:
    """The Junos configuration for one router (policy-options, protocols, routing-options)."""
    t = _Tree()
    t.lines += [f"# {line}".rstrip() for line in header_lines(model, router, "junos")]
    _policy_options(t, router)
    _protocols(t, router)
    t.open("routing-options")
    t.leaf(f"autonomous-system {router.asn}")
    if router.router_id is not None:
        t.leaf(f"router-id {router.router_id}")
    if router.multipath > 1:
        t.open("forwarding-table")
        t.leaf(f"export {ECMP_POLICY}")
        t.close()
    t.close()
    return "\n".join(t.lines) + "\n"


def _policy_options(t: _Tree, router: Router) -> None:
    t.open("policy-options")
    for policy in router.policies:
        t.open(f"policy-statement {policy.name}")
        for family in policy_families(router, policy.name):
            prefixes = policy.prefixes(family)
            if not prefixes:
                continue
            t.open(f"term vips-{JUNOS_FAMILY[family]}")
            t.open("from")
            t.leaf(f"family {JUNOS_FAMILY[family]}")
            for net in prefixes:
                match = "exact" if exact_host(net) else (
                    f"prefix-length-range /{net.max_prefixlen}-/{net.max_prefixlen}")
                t.leaf(f"route-filter {net} {match}")
            t.close()
            t.leaf("then accept")
            t.close()
        t.open("term reject-rest")
        t.leaf("then reject")
        t.close()
        t.close()
    t.open(f"policy-statement {EXPORT_POLICY}")
    if router.export_default:
        for family in router.families():
            t.open(f"term default-{JUNOS_FAMILY[family]}")
            t.open("from")
            t.leaf(f"route-filter {DEFAULT_NET[family]} exact")
            t.close()
            t.leaf("then accept")
            t.close()
    t.open("term send-nothing")
    t.leaf("then reject")
    t.close()
    t.close()
    if router.multipath > 1:
        t.open(f"policy-statement {ECMP_POLICY}")
        t.open("then")
        t.leaf("load-balance per-packet")
        t.close()
        t.close()
    t.close()


def _protocols(t: _Tree, router: Router) -> None:
    t.open("protocols")
    t.open("bgp")
    if router.always_compare_med:
        t.leaf("path-selection always-compare-med")
    for internal in (False, True):
        members = [n for n in router.neighbors if n.internal == internal]
        if not members:
            continue
        t.open(f"group EDGE-SPEAKER-{'IBGP' if internal else 'EBGP'}")
        t.leaf(f"type {'internal' if internal else 'external'}")
        t.leaf(f"export {EXPORT_POLICY}")
        if router.multipath > 1:
            t.leaf("multipath multiple-as" if router.multipath_relax else "multipath")
        for n in members:
            _neighbor(t, n)
        t.close()
    t.close()
    t.close()


def _neighbor(t: _Tree, n: Neighbor) -> None:
    t.open(f"neighbor {n.address}")
    t.leaf(f"description {quoted(n.description)}")
    t.leaf(f"local-address {n.local_address}")
    if not n.internal:
        t.leaf(f"peer-as {n.asn}")
    t.leaf(f"import {n.import_policy}")
    t.leaf(f"hold-time {n.hold_time}")
    if n.password is not None:
        t.leaf(f"authentication-key {quoted(n.password)}")
    if n.multihop is not None and not n.internal:
        t.open("multihop")
        t.leaf(f"ttl {n.multihop}")
        t.close()
    if n.bfd is not None:
        t.open("bfd-liveness-detection")
        t.leaf(f"minimum-receive-interval {n.bfd.receive_ms}")
        t.leaf(f"multiplier {n.bfd.multiplier}")
        t.leaf(f"session-mode {'multihop' if n.bfd.multihop else 'single-hop'}")
        t.open("transmit-interval")
        t.leaf(f"minimum-interval {n.bfd.transmit_ms}")
        t.close()
        t.close()
    if n.graceful_restart:
        t.leaf("graceful-restart")
    for family in n.families:
        _family(t, n, family)
    t.close()


def _family(t: _Tree, n: Neighbor, family: Family) -> None:
    t.open(f"family {JUNOS_FAMILY[family]}")
    t.open("unicast")
    t.open("prefix-limit")
    t.leaf(f"maximum {n.max_prefix(family)}")
    t.leaf("teardown 90 idle-timeout 5")
    t.close()
    t.close()
    t.close()
