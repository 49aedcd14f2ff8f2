"""BIRD 2 rendering of the router-side model: a complete, loadable `bird.conf`."""

from __future__ import annotations

from speaker.routercfg.common import (
    bird_ident,
    exact_host,
    family_of_address,
    header_lines,
    policy_families,
    quoted,
)
from speaker.routercfg.model import Family, Neighbor, Router, RouterConfigModel

CHANNEL = {"ipv4-unicast": "ipv4", "ipv6-unicast": "ipv6"}
DEFAULT_NET = {"ipv4-unicast": "0.0.0.0/0", "ipv6-unicast": "::/0"}
SHORT = {"ipv4-unicast": "v4", "ipv6-unicast": "v6"}


def render(model: RouterConfigModel, router: Router) -> str:
    """The whole BIRD configuration for one router."""
    out = [f"# {line}".rstrip() for line in header_lines(model, router, "bird")]
    out.append("")
    if router.router_id is not None:
        out.append(f"router id {router.router_id};")
    else:
        out.append("# IPv6-only router: set `router id` by hand (BIRD needs an IPv4-shaped id)")
    out.append("")
    out += _filters(router)
    out += _standalone(router)
    names = _protocol_names(router)
    for n in router.neighbors:
        out += _protocol(router, n, names[n])
    return "\n".join(out) + "\n"


def _filter_name(policy: str, family: Family) -> str:
    return bird_ident(f"{policy}_{SHORT[family]}").lower()


def _filters(router: Router) -> list[str]:
    out: list[str] = []
    for policy in router.policies:
        for family in policy_families(router, policy.name):
            name = _filter_name(policy.name, family)
            prefixes = policy.prefixes(family)
            out.append(f"filter {name} {{")
            if prefixes:
                items = ", ".join(
                    str(p) if exact_host(p) else f"{p}{{{p.max_prefixlen},{p.max_prefixlen}}}"
                    for p in prefixes)
                out.append(f"  if net ~ [ {items} ] then accept;")
            else:
                out.append(f"  # no {family} pool: accept nothing")
            out += ["  reject;", "}", ""]
    for family in router.families():
        out.append(f"filter edge_speaker_out_{SHORT[family]} {{")
        if router.export_default:
            out.append(f"  if net = {DEFAULT_NET[family]} then accept;")
        out += ["  reject;", "}", ""]
    return out


def _standalone(router: Router) -> list[str]:
    merge = f" limit {router.multipath}" if router.multipath > 1 else ""
    out = [
        "# --- Standalone router: if your bird.conf already has device and kernel",
        "# --- protocols, drop this block and add `merge paths on"
        f"{merge};` to your kernel protocols.",
        "protocol device {",
        "}",
        "",
    ]
    for family in router.families():
        short = SHORT[family]
        out += [f"protocol kernel edge_speaker_kernel_{short} {{",
                f"  {CHANNEL[family]} {{", "    export where source = RTS_BGP;", "  };"]
        if router.multipath > 1:
            out.append(f"  merge paths on limit {router.multipath};")
        out += ["}", ""]
    out.append("# --- end of standalone block")
    out.append("")
    return out


def _protocol_names(router: Router) -> dict[Neighbor, str]:
    names: dict[Neighbor, str] = {}
    used: set[str] = set()
    for n in router.neighbors:
        base = bird_ident(f"edge_{n.appliance}_{SHORT[family_of_address(n)]}").lower()
        name, i = base, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        names[n] = name
    return names


def _protocol(router: Router, n: Neighbor, name: str) -> list[str]:
    out = [f"protocol bgp {name} {{",
           f"  description {quoted(n.description)};",
           f"  local {n.local_address} as {router.asn};",
           f"  neighbor {n.address} as {n.asn};",
           f"  hold time {n.hold_time};",
           f"  keepalive time {n.keepalive};",
           "  error wait time 2, 30;  # reconnect fast after an appliance restart"]
    if n.password is not None:
        out.append(f"  password {quoted(n.password)};")
    if n.multihop is not None:
        out.append(f"  multihop {n.multihop};")
    elif n.internal:
        out.append("  direct;")
    if n.bfd is not None:
        b = n.bfd
        out.append(f"  bfd {{ min rx interval {b.receive_ms} ms; min tx interval "
                   f"{b.transmit_ms} ms; multiplier {b.multiplier}; }};  # "
                   f"{'multihop' if b.multihop else 'single-hop'}, down after "
                   f"{b.detection_ms} ms")
    if n.graceful_restart:
        out.append("  graceful restart aware;")
    if router.deterministic_med:
        out.append("  deterministic med on;")
    if router.always_compare_med:
        out.append("  med metric on;")
    for family in n.families:
        short = SHORT[family]
        out += [f"  {CHANNEL[family]} {{",
                f"    import filter {_filter_name(n.import_policy, family)};",
                f"    import limit {n.max_prefix(family)} action restart;",
                f"    export filter edge_speaker_out_{short};",
                "  };"]
    out += ["}", ""]
    if n.bfd is not None and n is next(x for x in router.neighbors if x.bfd is not None):
        out += ["protocol bfd edge_speaker_bfd {", "}", ""]
    return out
