"""Cisco IOS-XR rendering of the router-side model: RPL sets/policies and `router bgp`."""

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
AFI = {"ipv4-unicast": "ipv4 unicast", "ipv6-unicast": "ipv6 unicast"}
DEFAULT_NET = {"ipv4-unicast": "0.0.0.0/0", "ipv6-unicast": "::/0"}


def render(model: RouterConfigModel, router: Router) -> str:
    """The IOS-XR configuration for one router."""
    out = [f"! {line}".rstrip() for line in header_lines(model, router, "iosxr")]
    out.append("!")
    out += _policies(router)
    out += _bgp(router)
    return "\n".join(out) + "\n"


def _policies(router: Router) -> list[str]:
    out: list[str] = []
    for policy in router.policies:
        sets = []
        for family in policy_families(router, policy.name):
            prefixes = policy.prefixes(family)
            if not prefixes:
                continue
            name = policy_name(policy.name, family)
            sets.append(name)
            entries = [str(n) if exact_host(n) else f"{n} ge {n.max_prefixlen} le "
                       f"{n.max_prefixlen}" for n in prefixes]
            out.append(f"prefix-set {name}")
            out += [f"  {e}," for e in entries[:-1]] + [f"  {entries[-1]}", "end-set", "!"]
        out.append(f"route-policy {policy.name}")
        if sets:
            cond = " or ".join(f"destination in {s}" for s in sets)
            out += [f"  if {cond} then", "    pass", "  else", "    drop", "  endif"]
        else:
            out.append("  drop")
        out += ["end-policy", "!"]
    out.append(f"route-policy {EXPORT_POLICY}")
    out += ["  drop", "end-policy", "!"]
    return out


def _bgp(router: Router) -> list[str]:
    out = [f"router bgp {router.asn}"]
    if router.router_id is not None:
        out.append(f" bgp router-id {router.router_id}")
    else:
        out.append(" ! IPv6-only router: set `bgp router-id` by hand")
    if router.graceful_restart():
        out.append(" bgp graceful-restart")
    if router.always_compare_med:
        out.append(" bgp bestpath med always")
    if router.multipath_relax:
        out.append(" bgp bestpath as-path multipath-relax")
    for family in router.families():
        out.append(f" address-family {AFI[family]}")
        if router.multipath > 1:
            kind = "ibgp" if any(n.internal for n in router.neighbors) else "ebgp"
            out.append(f"  maximum-paths {kind} {router.multipath}")
        out.append(" !")
    for n in router.neighbors:
        out += _neighbor(router, n)
    out.append("!")
    return out


def _neighbor(router: Router, n: Neighbor) -> list[str]:
    out = [f" neighbor {n.address}", f"  remote-as {n.asn}",
           f"  description {n.description}",
           f"  ! if not directly connected: update-source <interface holding {n.local_address}>",
           f"  timers {n.keepalive} {n.hold_time}"]
    if n.password is not None:
        out.append(f"  password clear {n.password}")
    if n.multihop is not None and not n.internal:
        out.append(f"  ebgp-multihop {n.multihop}")
    if n.bfd is not None:
        b = n.bfd
        # IOS-XR has one interval for both directions: the slower of the two keeps
        # the appliance within what it asked for
        out += ["  bfd fast-detect", f"  bfd minimum-interval {max(b.transmit_ms, b.receive_ms)}",
                f"  bfd multiplier {b.multiplier}"]
    for family in n.families:
        if n not in neighbors_in(router, family):
            continue
        out += _neighbor_family(router, n, family)
    out.append(" !")
    return out


def _neighbor_family(router: Router, n: Neighbor, family: Family) -> list[str]:
    out = [f"  address-family {AFI[family]}",
           f"   route-policy {n.import_policy} in",
           f"   route-policy {EXPORT_POLICY} out",
           f"   maximum-prefix {n.max_prefix(family)} 90 restart 5"]
    if router.export_default:
        out.append("   default-originate")
    out.append("  !")
    return out
