"""Build the neutral router-side model from one or more appliance configs (pure).

A router is identified by its address on the peering (`bgp.peers[].address`);
the same router seen by several appliances gets one neighbor per appliance.
`--peer` selects routers by address and merges them into one (a dual-stack
router has one address per family).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Literal

from speaker.config import AppConfig
from speaker.config.bgp import BgpConfig, PeerConfig
from speaker.routercfg.model import (
    FAMILIES,
    PASSWORD_PLACEHOLDER,
    Bfd,
    ImportPolicy,
    IPAddress,
    Neighbor,
    Router,
    RouterConfigModel,
    Source,
)

POLICY_NAME = "EDGE-SPEAKER-IN"
MAX_PREFIX_MARGIN = 100
"""max-prefix = VIPs + max(VIPs, MAX_PREFIX_MARGIN): room to grow inside the pools."""

_UNSAFE_SECRET = re.compile(r"[\s\"'\\#!;{}?]")
_DESCRIPTION_DROP = re.compile(r"[^A-Za-z0-9 _.:/@()+,=-]")


class RouterConfigError(Exception):
    """The appliance configs are valid but cannot describe a router config."""

    def __init__(self, issues: Sequence[str]) -> None:
        super().__init__("; ".join(issues))
        self.issues = list(issues)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Choices of the command line that shape the model."""

    appliances: tuple[str, ...] = ()
    """Keep only these appliances (node.name); empty keeps all."""
    peers: tuple[IPAddress, ...] = ()
    """Keep only the router(s) at these addresses, merged into one router."""
    redact_passwords: bool = False
    """Write PASSWORD_PLACEHOLDER instead of each TCP-MD5 key."""
    export_default: bool = False
    """Send a default route to the appliances (otherwise nothing is exported)."""


@dataclass(frozen=True, slots=True)
class _Session:
    path: str
    config: AppConfig
    bgp: BgpConfig
    index: int
    peer: PeerConfig
    local: IPAddress
    """The appliance's address on the peering (peer.local_address)."""


def printable(text: str) -> str:
    """`text` with every non-printable character (line breaks of any kind, C0/C1
    controls, bidi overrides) written as a Python escape, so that a file name cannot
    start a line of router config."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def safe_description(text: str) -> str:
    """Text every vendor accepts inside a description (others become '_')."""
    return _DESCRIPTION_DROP.sub("_", text).strip() or "edge-speaker"


def build_model(configs: Sequence[tuple[str, AppConfig]], options: BuildOptions,
                version: str) -> RouterConfigModel:
    """The router-side model for `configs` (pairs of file name and parsed config)."""
    chosen = _choose_appliances(configs, options.appliances)
    sessions, issues = _sessions(chosen, options)
    if issues:
        raise RouterConfigError(issues)
    groups = _group_by_router(sessions, options.peers)
    routers = tuple(_router(group, options) for group in groups)
    sources = tuple(sorted({Source(c.node.name, printable(path)) for path, c in chosen if c.bgp},
                           key=lambda s: (s.appliance, s.path)))
    return RouterConfigModel(version=version, sources=sources, routers=routers)


def _choose_appliances(configs: Sequence[tuple[str, AppConfig]],
                       wanted: tuple[str, ...]) -> list[tuple[str, AppConfig]]:
    seen: dict[str, str] = {}
    issues = []
    for path, config in configs:
        name = config.node.name
        if name in seen:
            issues.append(f"{path}: node.name {name!r} is also the name in {seen[name]}; "
                          "every appliance needs its own name")
        seen.setdefault(name, path)
    missing = sorted(set(wanted) - set(seen))
    if missing:
        issues.append(f"--appliance {', '.join(missing)}: no such node.name among "
                      f"the configs ({', '.join(sorted(seen))})")
    if issues:
        raise RouterConfigError(issues)
    chosen = [(p, c) for p, c in configs if not wanted or c.node.name in wanted]
    if not any(c.bgp for _, c in chosen):
        raise RouterConfigError([f"{', '.join(p for p, _ in chosen)}: no bgp section: these "
                                 "appliances do not peer with routers (announce: l2 only)"])
    return chosen


def _sessions(chosen: Iterable[tuple[str, AppConfig]],
              options: BuildOptions) -> tuple[list[_Session], list[str]]:
    sessions, issues = [], []
    for path, config in chosen:
        if config.bgp is None:
            continue
        for i, peer in enumerate(config.bgp.peers):
            at = f"{path}: bgp.peers[{i}]"
            if peer.local_address is None:
                issues.append(f"{at}.local_address: router-config needs the appliance's own "
                              f"address on the peering with {peer.name} ({peer.address}), the "
                              "address the router connects to; add local_address")
            if (peer.password is not None and not options.redact_passwords
                    and _UNSAFE_SECRET.search(peer.password)):
                issues.append(f"{at}.password: contains a space, quote or one of #!;{{}}?\\ "
                              "that some router configs cannot hold; choose another key or "
                              "use --no-secrets")
            if peer.local_address is not None:
                sessions.append(_Session(path, config, config.bgp, i, peer,
                                         peer.local_address))
    return sessions, issues


def _group_by_router(sessions: list[_Session],
                     peers: tuple[IPAddress, ...]) -> list[list[_Session]]:
    by_address: dict[IPAddress, list[_Session]] = {}
    for session in sessions:
        by_address.setdefault(session.peer.address, []).append(session)
    if peers:
        missing = [str(a) for a in peers if a not in by_address]
        if missing:
            known = ", ".join(str(a) for a in sorted(by_address, key=_addr_key))
            raise RouterConfigError([f"--peer {', '.join(missing)}: no appliance peers with "
                                     f"a router at this address (known: {known})"])
        groups = [[s for a in sorted(set(peers), key=_addr_key) for s in by_address[a]]]
    else:
        groups = [by_address[a] for a in sorted(by_address, key=_addr_key)]
    issues = []
    for group in groups:
        asns = sorted({s.peer.asn for s in group})
        if len(asns) > 1:
            where = ", ".join(f"{s.path} ({s.peer.address} AS{s.peer.asn})" for s in group)
            issues.append(f"one router cannot have several ASNs: {where}")
        seen: dict[tuple[IPAddress, IPAddress], str] = {}
        for s in group:
            key = (s.peer.address, s.local)
            if key in seen:
                issues.append(f"{s.path}: bgp.peers[{s.index}].local_address {key[1]} is "
                              f"also used by {seen[key]}: the router needs one per appliance")
            seen.setdefault(key, s.path)
    if issues:
        raise RouterConfigError(issues)
    return groups


def _addr_key(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))


def _bgp_vips(config: AppConfig) -> list[IPAddress]:
    return sorted({s.vip for s in config.services if s.announce in ("bgp", "both")},
                  key=_addr_key)


def _mode(config: AppConfig, bgp: BgpConfig) -> Literal["ecmp", "active-backup", "mixed"]:
    modes = {s.bgp.mode or bgp.mode for s in config.services
             if s.announce in ("bgp", "both")} or {bgp.mode}
    if len(modes) > 1:
        return "mixed"
    return "active-backup" if modes == {"active-backup"} else "ecmp"


def _prefix_sets(config: AppConfig, bgp: BgpConfig) -> tuple[
        tuple[IPv4Network, ...], tuple[IPv6Network, ...], bool]:
    nets: list[IPv4Network | IPv6Network]
    if bgp.pools:
        nets = list(bgp.pools)
        from_pools = True
    else:
        nets = [ip_network(v) for v in _bgp_vips(config)]
        from_pools = False
    v4 = tuple(sorted({n for n in nets if isinstance(n, IPv4Network)}))
    v6 = tuple(sorted({n for n in nets if isinstance(n, IPv6Network)}))
    return v4, v6, from_pools


def max_prefix(vips: int) -> int:
    """Prefix limit for a neighbor announcing `vips` routes of one family."""
    return vips + max(vips, MAX_PREFIX_MARGIN)


def _router(group: list[_Session], options: BuildOptions) -> Router:
    asn = group[0].peer.asn
    by_set: dict[tuple[tuple[IPv4Network, ...], tuple[IPv6Network, ...], bool], list[str]] = {}
    for s in sorted(group, key=lambda s: s.config.node.name):
        by_set.setdefault(_prefix_sets(s.config, s.bgp), []).append(s.config.node.name)
    policies: list[ImportPolicy] = []
    policy_of: dict[str, str] = {}
    for n, (key, names) in enumerate(by_set.items(), start=1):
        name = POLICY_NAME if len(by_set) == 1 else f"{POLICY_NAME}-{n}"
        policies.append(ImportPolicy(name=name, ipv4=key[0], ipv6=key[1], from_pools=key[2]))
        policy_of.update(dict.fromkeys(names, name))
    neighbors = tuple(sorted((_neighbor(s, asn, policy_of, options) for s in group),
                             key=lambda n: (n.appliance, _addr_key(n.address))))
    addresses = tuple(sorted({s.peer.address for s in group}, key=_addr_key))
    v4 = [a for a in addresses if isinstance(a, IPv4Address)]
    appliances = {n.appliance for n in neighbors}
    backup_used = any(n.mode != "ecmp" for n in neighbors)
    relax = len({n.asn for n in neighbors}) > 1
    return Router(
        name="/".join(sorted({s.peer.name for s in group})),
        asn=asn,
        addresses=addresses,
        router_id=v4[0] if v4 else None,
        neighbors=neighbors,
        policies=tuple(policies),
        multipath=len(appliances) if len(appliances) > 1 else 1,
        multipath_relax=relax,
        always_compare_med=backup_used and relax,
        deterministic_med=backup_used,
        export_default=options.export_default,
        sources=tuple(sorted({Source(s.config.node.name, printable(s.path)) for s in group},
                             key=lambda x: (x.appliance, x.path))),
    )


def _neighbor(s: _Session, router_asn: int, policy_of: dict[str, str],
              options: BuildOptions) -> Neighbor:
    config, peer = s.config, s.peer
    vips = _bgp_vips(config)
    n4 = sum(1 for v in vips if v.version == 4)
    n6 = len(vips) - n4
    hold = max(3, round(peer.hold_time))
    keepalive = max(1, int(peer.effective_keepalive))
    if keepalive >= hold:
        keepalive = max(1, hold // 3)
    password = peer.password
    if password is not None and options.redact_passwords:
        password = PASSWORD_PLACEHOLDER
    name = config.node.name
    return Neighbor(
        appliance=name,
        peer_name=peer.name,
        address=s.local,
        asn=s.bgp.local_asn,
        local_address=peer.address,
        description=safe_description(peer.description or f"edge-speaker {name}"),
        password=password,
        hold_time=hold,
        keepalive=keepalive,
        multihop=peer.multihop,
        families=tuple(f for f in FAMILIES if f in peer.families),
        graceful_restart=peer.graceful_restart.enabled,
        restart_time=round(peer.graceful_restart.restart_time),
        bfd=Bfd(transmit_ms=peer.bfd.min_rx_ms, receive_ms=peer.bfd.min_tx_ms,
                multiplier=peer.bfd.multiplier, multihop=peer.multihop is not None)
        if peer.bfd.enabled else None,
        appliance_passive=peer.passive,
        import_policy=policy_of[name],
        max_prefix_ipv4=max_prefix(n4),
        max_prefix_ipv6=max_prefix(n6),
        vips_ipv4=n4,
        vips_ipv6=n6,
        mode=_mode(config, s.bgp),
        internal=s.bgp.local_asn == router_asn,
    )
