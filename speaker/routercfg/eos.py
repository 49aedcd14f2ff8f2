"""Arista EOS rendering of the router-side model: running-config syntax."""

from __future__ import annotations

from speaker.routercfg.common import (
    exact_host,
    header_lines,
    neighbors_in,
    policy_families,
    policy_name,
)
from speaker.routercfg.model import Family, Neighbor, Router, RouterConfigModel

EXPORT_POLICY = "EDGE-SPEAKER-OUT"
AFI = {"ipv4-unicast": "ipv4", "ipv6-unicast": "ipv6"}
PREFIX_LIST = {"ipv4-unicast": "ip prefix-list", "ipv6-unicast": "ipv6 prefix-list"}
MATCH = {"ipv4-unicast": "match ip address prefix-list",
         "ipv6-unicast": "match ipv6 address prefix-list"}


def render(model: RouterConfigModel, router: Router) -> str:
    """The EOS configuration for one router."""
    out = [f"! {line}".rstrip() for line in header_lines(model, router, "eos")]
    out.append("!")
    for policy in router.policies:
        for family in policy_families(router, policy.name):
            name = policy_name(policy.name, family)
            prefixes = policy.prefixes(family)
            if not prefixes:
                out += [f"! {name}: no {family} pool: accept nothing",
                        f"route-map {name} deny 10", "!"]
                continue
            out.append(f"{PREFIX_LIST[family]} {name}")
            for seq, net in enumerate(prefixes, start=1):
                length = "" if exact_host(net) else f" ge {net.max_prefixlen}"
                out.append(f"   seq {seq * 10} permit {net}{length}")
            out += ["!", f"route-map {name} permit 10", f"   {MATCH[family]} {name}", "!"]
    out += [f"route-map {EXPORT_POLICY} deny 10", "!"]
    out += _bgp(router)
    return "\n".join(out) + "\n"


def _bgp(router: Router) -> list[str]:
    out = [f"router bgp {router.asn}"]
    if router.router_id is not None:
        out.append(f"   router-id {router.router_id}")
    else:
        out.append("   ! IPv6-only router: set `router-id` by hand")
    out.append("   no bgp default ipv4-unicast")
    if router.multipath > 1:
        out.append(f"   maximum-paths {router.multipath} ecmp {router.multipath}")
    if router.always_compare_med:
        out.append("   bgp always-compare-med")
    if router.multipath_relax:
        out.append("   bgp bestpath as-path multipath-relax")
    for n in router.neighbors:
        out += _neighbor(n)
    for family in router.families():
        out += _address_family(router, family)
    out.append("!")
    return out


def _neighbor(n: Neighbor) -> list[str]:
    p = f"   neighbor {n.address}"
    out = [f"{p} remote-as {n.asn}", f"{p} description {n.description}",
           f"   ! {n.address}: if not directly connected, add update-source <interface "
           f"holding {n.local_address}>",
           f"{p} timers {n.keepalive} {n.hold_time}"]
    if n.password is not None:
        out.append(f"{p} password 0 {n.password}")
    if n.multihop is not None and not n.internal:
        out.append(f"{p} ebgp-multihop {n.multihop}")
    if n.bfd is not None:
        b = n.bfd
        out += [f"{p} bfd", f"{p} bfd interval {b.transmit_ms} min-rx {b.receive_ms} "
                f"multiplier {b.multiplier}"]
    if n.graceful_restart:
        out.append(f"{p} graceful-restart-helper")
    limit = sum(n.max_prefix(f) for f in n.families)  # one limit over every family
    out.append(f"{p} maximum-routes {limit} warning-limit 90 percent")
    return out


def _address_family(router: Router, family: Family) -> list[str]:
    out = ["   !", f"   address-family {AFI[family]}"]
    for n in neighbors_in(router, family):
        p = f"      neighbor {n.address}"
        out += [f"{p} activate",
                f"{p} route-map {policy_name(n.import_policy, family)} in",
                f"{p} route-map {EXPORT_POLICY} out"]
        if router.export_default:
            out.append(f"{p} default-originate always")
    return out
