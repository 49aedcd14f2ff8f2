"""FRR (bgpd, 8.x) rendering of the router-side model: `frr.conf` syntax."""

from __future__ import annotations

from speaker.routercfg.common import (
    exact_host,
    header_lines,
    neighbors_in,
    policy_families,
    policy_name,
)
from speaker.routercfg.model import Bfd, Family, Neighbor, Router, RouterConfigModel

EXPORT_POLICY = "EDGE-SPEAKER-OUT"
AFI = {"ipv4-unicast": "ipv4 unicast", "ipv6-unicast": "ipv6 unicast"}
PREFIX_LIST = {"ipv4-unicast": "ip prefix-list", "ipv6-unicast": "ipv6 prefix-list"}
MATCH = {"ipv4-unicast": "match ip address prefix-list",
         "ipv6-unicast": "match ipv6 address prefix-list"}


def render(model: RouterConfigModel, router: Router) -> str:
    """The whole FRR configuration for one router."""
    out = [f"! {line}".rstrip() for line in header_lines(model, router, "frr")]
    out.append("!")
    out += _policies(router)
    out += _bfd_profiles(router)
    out += _bgp(router)
    return "\n".join(out) + "\n"


def _policies(router: Router) -> list[str]:
    out: list[str] = []
    for policy in router.policies:
        for family in policy_families(router, policy.name):
            name = policy_name(policy.name, family)
            prefixes = policy.prefixes(family)
            if not prefixes:
                out += [f"! {name}: no {family} pool: accept nothing",
                        f"route-map {name} deny 10", "exit", "!"]
                continue
            for seq, net in enumerate(prefixes, start=1):
                length = "" if exact_host(net) else f" ge {net.max_prefixlen}"
                out.append(f"{PREFIX_LIST[family]} {name} seq {seq * 5} permit {net}{length}")
            out += ["!", f"route-map {name} permit 10", f" {MATCH[family]} {name}", "exit",
                    "!"]
    out += [f"route-map {EXPORT_POLICY} deny 10", "exit", "!"]
    return out


def bfd_profile(bfd: Bfd) -> str:
    """Name of the bfdd profile holding these timers."""
    return f"edge-speaker-{bfd.transmit_ms}-{bfd.receive_ms}x{bfd.multiplier}"


def _bfd_profiles(router: Router) -> list[str]:
    timers = sorted({n.bfd for n in router.neighbors if n.bfd is not None},
                    key=bfd_profile)
    if not timers:
        return []
    out = ["bfd"]
    for b in timers:
        out += [f" profile {bfd_profile(b)}", f"  transmit-interval {b.transmit_ms}",
                f"  receive-interval {b.receive_ms}", f"  detect-multiplier {b.multiplier}",
                " exit"]
    return [*out, "exit", "!"]


def _bgp(router: Router) -> list[str]:
    out = [f"router bgp {router.asn}"]
    if router.router_id is not None:
        out.append(f" bgp router-id {router.router_id}")
    else:
        out.append(" ! IPv6-only router: set `bgp router-id` by hand")
    out += [" bgp log-neighbor-changes", " no bgp default ipv4-unicast"]
    if router.deterministic_med:
        out.append(" bgp deterministic-med")
    if router.always_compare_med:
        out.append(" bgp always-compare-med")
    if router.multipath_relax:
        out.append(" bgp bestpath as-path multipath-relax")
    for n in router.neighbors:
        out += _neighbor(n)
    for family in router.families():
        out += _address_family(router, family)
    out += ["exit", "!"]
    return out


def _neighbor(n: Neighbor) -> list[str]:
    p = f" neighbor {n.address}"
    out = [f"{p} remote-as {n.asn}", f"{p} description {n.description}",
           f"{p} update-source {n.local_address}",
           f"{p} timers {n.keepalive} {n.hold_time}"]
    if n.password is not None:
        out.append(f"{p} password {n.password}")
    if n.multihop is not None and not n.internal:
        out.append(f"{p} ebgp-multihop {n.multihop}")
    if n.bfd is not None:
        # bgpd asks bfdd for a multihop session when the peering is multihop
        out += [f"{p} bfd", f"{p} bfd profile {bfd_profile(n.bfd)}"]
    if n.graceful_restart:
        out.append(f"{p} graceful-restart-helper")
    return out


def _address_family(router: Router, family: Family) -> list[str]:
    out = [" !", f" address-family {AFI[family]}"]
    if router.multipath > 1:
        internal = any(n.internal for n in router.neighbors)
        out.append(f"  maximum-paths {'ibgp ' if internal else ''}{router.multipath}")
    for n in neighbors_in(router, family):
        p = f"  neighbor {n.address}"
        out += [f"{p} activate",
                f"{p} route-map {policy_name(n.import_policy, family)} in",
                f"{p} route-map {EXPORT_POLICY} out",
                f"{p} maximum-prefix {n.max_prefix(family)} 90 restart 5"]
        if router.export_default:
            out.append(f"{p} default-originate")
    out.append(" exit-address-family")
    return out
