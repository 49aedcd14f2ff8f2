"""GoBGP (gobgpd 3.x) rendering of the router-side model: `gobgpd.toml`.

GoBGP applies import/export policies globally (outside route-server mode), so
each statement matches the appliances by a neighbor set: other peers of the
router are left alone.
"""

from __future__ import annotations

from speaker.routercfg.common import exact_host, header_lines, policy_families, policy_name, quoted
from speaker.routercfg.model import Router, RouterConfigModel

ALL_APPLIANCES = "EDGE-SPEAKER-APPLIANCES"
DEFAULT_NET = {"ipv4-unicast": "0.0.0.0/0", "ipv6-unicast": "::/0"}


def render(model: RouterConfigModel, router: Router) -> str:
    """The whole gobgpd.toml for one router."""
    out = [f"# {line}".rstrip() for line in header_lines(model, router, "gobgp")]
    if router.bfd():
        out.append("# BFD: GoBGP has no BFD. The appliances run BFD towards this router, but")
        out.append("# GoBGP cannot answer it: a dead appliance is noticed only when the hold")
        out.append("# timer expires (" + ", ".join(sorted({
            f"{n.appliance} {n.hold_time} s" for n in router.neighbors if n.bfd is not None}))
            + "), not after the BFD detection time.")
    out += ["", "[global.config]", f"  as = {router.asn}"]
    if router.router_id is not None:
        out.append(f"  router-id = {quoted(str(router.router_id))}")
    else:
        out.append('  router-id = "REPLACE-WITH-ROUTER-ID"  # IPv6-only router')
    out += ["[global.apply-policy.config]",
            '  import-policy-list = ["EDGE-SPEAKER-IN"]',
            '  export-policy-list = ["EDGE-SPEAKER-OUT"]']
    if router.multipath > 1:
        out += ["[global.use-multiple-paths.config]", "  enabled = true"]
    if router.always_compare_med:
        out += ["[global.route-selection-options.config]", "  always-compare-med = true"]
    out.append("")
    out += _defined_sets(router)
    out += _policies(router)
    for n in router.neighbors:
        out += ["[[neighbors]]", "  [neighbors.config]",
                f"    neighbor-address = {quoted(str(n.address))}",
                f"    peer-as = {n.asn}",
                f"    description = {quoted(n.description)}"]
        if n.password is not None:
            out.append(f"    auth-password = {quoted(n.password)}")
        out += ["  [neighbors.timers.config]",
                f"    hold-time = {n.hold_time}",
                f"    keepalive-interval = {n.keepalive}",
                "  [neighbors.transport.config]",
                f"    local-address = {quoted(str(n.local_address))}"]
        if n.multihop is not None and not n.internal:
            out += ["  [neighbors.ebgp-multihop.config]", "    enabled = true",
                    f"    multihop-ttl = {n.multihop}"]
        if n.graceful_restart:
            out += ["  [neighbors.graceful-restart.config]", "    enabled = true",
                    "    helper-only = true"]
        for family in n.families:
            out += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                    f"      afi-safi-name = {quoted(family)}",
                    "    [neighbors.afi-safis.prefix-limit.config]",
                    f"      max-prefixes = {n.max_prefix(family)}",
                    "      shutdown-threshold-pct = 90"]
            if n.graceful_restart:
                out += ["    [neighbors.afi-safis.mp-graceful-restart.config]",
                        "      enabled = true"]
        out.append("")
    return "\n".join(out) + "\n"


def _defined_sets(router: Router) -> list[str]:
    out = []
    for policy in router.policies:
        for family in policy_families(router, policy.name):
            prefixes = policy.prefixes(family)
            if not prefixes:
                continue
            out += ["[[defined-sets.prefix-sets]]",
                    f"  prefix-set-name = {quoted(policy_name(policy.name, family))}"]
            for net in prefixes:
                out += ["  [[defined-sets.prefix-sets.prefix-list]]",
                        f"    ip-prefix = {quoted(str(net))}"]
                if not exact_host(net):
                    high = net.max_prefixlen
                    out.append(f'    masklength-range = "{high}..{high}"')
        out += ["[[defined-sets.neighbor-sets]]",
                f"  neighbor-set-name = {quoted(policy.name)}",
                "  neighbor-info-list = [" + ", ".join(
                    quoted(f"{n.address}/{n.address.max_prefixlen}") for n in router.neighbors
                    if n.import_policy == policy.name) + "]"]
    if router.export_default:
        for family in router.families():
            default = DEFAULT_NET[family]
            out += ["[[defined-sets.prefix-sets]]",
                    f"  prefix-set-name = {quoted(policy_name('EDGE-SPEAKER-DEFAULT', family))}",
                    "  [[defined-sets.prefix-sets.prefix-list]]",
                    f"    ip-prefix = {quoted(default)}"]
    out += ["[[defined-sets.neighbor-sets]]", f"  neighbor-set-name = {quoted(ALL_APPLIANCES)}",
            "  neighbor-info-list = [" + ", ".join(
                quoted(f"{n.address}/{n.address.max_prefixlen}") for n in router.neighbors) + "]",
            ""]
    return out


def _statement(name: str, conditions: list[tuple[str, str]], disposition: str) -> list[str]:
    out = ["  [[policy-definitions.statements]]", f"    name = {quoted(name)}"]
    for kind, value in conditions:
        out += [f"    [policy-definitions.statements.conditions.match-{kind}-set]",
                f"      {kind}-set = {quoted(value)}"]
    out += ["    [policy-definitions.statements.actions]",
            f"      route-disposition = {quoted(disposition)}"]
    return out


def _policies(router: Router) -> list[str]:
    out = ["[[policy-definitions]]", '  name = "EDGE-SPEAKER-IN"']
    for policy in router.policies:
        for family in policy_families(router, policy.name):
            if policy.prefixes(family):
                name = policy_name(policy.name, family)
                out += _statement(f"accept-{name}", [("prefix", name),
                                                     ("neighbor", policy.name)], "accept-route")
    out += _statement("reject-rest-from-appliances", [("neighbor", ALL_APPLIANCES)],
                      "reject-route")
    out += ["", "[[policy-definitions]]", '  name = "EDGE-SPEAKER-OUT"']
    if router.export_default:
        for family in router.families():
            name = policy_name("EDGE-SPEAKER-DEFAULT", family)
            out += _statement(f"send-{name}", [("prefix", name), ("neighbor", ALL_APPLIANCES)],
                              "accept-route")
    out += _statement("send-nothing-to-appliances", [("neighbor", ALL_APPLIANCES)],
                      "reject-route")
    out.append("")
    return out
