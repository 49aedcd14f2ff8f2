"""Which parts a config needs, with what settings, and what a reload must do about them.

Pure. `parts_for(config)` describes every part the appliance runs for a config
(health checker, election engine, BGP speaker, BFD, L2 responder, DNS publisher, hooks,
IPVS forwarder, VIP addresses, sysctl guard, and the process-level API/metrics/log
settings);
start-up builds exactly these, and a reload hands `diff_parts(old, new)` to the
supervisor, which starts, stops, replaces or reconfigures parts live.

A part is described by a `PartSpec`: its `kind`, its `variant` (the
implementation: `single`/`vrrp` for the election, `exabgp` for BGP, ...), its
settings as (dotted path, value) pairs, and which of those paths cannot change
while it runs (`fixed`). A changed variant replaces the part (stop the old one,
start the new one); a changed fixed setting, or starting/stopping a part that
cannot start live (`live_start=False`), is `restart_required` with the dotted path.

Adding a part (etcd election, BFD, DNS publisher) is one entry in `DESCRIBERS`
here plus one builder in `speaker.factory.BUILDERS`; see docs/reload.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal

from dataplane import sysctl as sysctl_table
from speaker.config import AppConfig

Setting = tuple[str, object]


@dataclass(frozen=True, slots=True)
class PartSpec:
    """One part a config needs and how it is configured."""

    kind: str
    variant: str
    path: str
    """Dotted config path that brings the part in (named in restart_required)."""
    settings: tuple[Setting, ...] = ()
    fixed: frozenset[str] = frozenset()
    """Setting paths that cannot change while the part runs."""
    live_start: bool = True
    """False: the part can only be started or stopped by a restart."""
    component: bool = True
    """True: it runs as a task with run/reconfigure/status (False: a passive object)."""

    def setting(self, path: str) -> object:
        """The value of one setting (KeyError if absent)."""
        return dict(self.settings)[path]


Action = Literal["start", "stop", "replace", "reconfigure", "restart_required"]


@dataclass(frozen=True, slots=True, order=True)
class Change:
    """What a reload does to one part (or why it cannot)."""

    kind: str
    action: Action
    detail: str = field(default="")
    """Dotted path (restart_required, reconfigure) or `old -> new` (replace)."""

    def __str__(self) -> str:
        if self.action == "restart_required":
            return f"restart_required: {self.detail}"
        verb = {"start": "started", "stop": "stopped", "replace": "replaced",
                "reconfigure": "reconfigured"}[self.action]
        return f"part {self.kind} {verb}" + (f" ({self.detail})" if self.detail else "")


def uses_bgp(config: AppConfig) -> bool:
    """True when some service is announced by BGP."""
    return config.bgp is not None and any(s.announce in ("bgp", "both") for s in config.services)


def uses_l2(config: AppConfig) -> bool:
    """True when some service is announced on the local segment."""
    return any(s.announce in ("l2", "both") for s in config.services)


def uses_dns(config: AppConfig) -> bool:
    """True when some service publishes DNS names."""
    return config.dns is not None and any(s.dns is not None for s in config.services)


def managed_ranges(config: AppConfig) -> tuple[IPv4Network | IPv6Network, ...]:
    """VIP ranges edge-speaker manages on the VIP interface: dataplane.owned_ranges,
    bgp.pools and every configured VIP (as a host network)."""
    ranges: list[IPv4Network | IPv6Network] = list(config.dataplane.owned_ranges)
    if config.bgp is not None:
        ranges += config.bgp.pools
    ranges += [ip_network(s.vip) for s in config.services]
    return tuple(dict.fromkeys(ranges))


def sysctl_modes(config: AppConfig) -> frozenset[sysctl_table.Mode]:
    """The table modes a config needs: forwarding methods, l2, ipv6."""
    modes: set[sysctl_table.Mode] = set()
    if config.dataplane.ipvs:
        modes |= {s.forwarding for s in config.services}
        if any(s.vip.version == 6 for s in config.services):
            modes.add("ipv6")
    if uses_l2(config):
        modes.add("l2")
    return frozenset(modes)


def _health(config: AppConfig) -> PartSpec:
    return PartSpec("health", "checker", "services")


def _election(config: AppConfig) -> PartSpec:
    e = config.election
    return PartSpec("election", e.engine, "election.engine",
                    (("election.preset", e.preset), ("election.groups", tuple(e.groups)),
                     ("election.vrrp", e.vrrp), ("election.etcd", e.etcd)))


def _bgp(config: AppConfig) -> PartSpec | None:
    if not uses_bgp(config) or config.bgp is None:
        return None
    return PartSpec("bgp", "exabgp", "bgp", (("bgp", config.bgp),
                                             ("node.router_id", config.node.router_id)))


def _l2(config: AppConfig) -> PartSpec | None:
    if not uses_l2(config):
        return None
    return PartSpec("l2", "responder", "services[].announce",
                    (("node.interfaces", tuple(config.node.client_interfaces())),))


def _bfd(config: AppConfig) -> PartSpec | None:
    if config.bgp is None:
        return None
    return PartSpec("bfd", "child", "bgp", (("bgp.peers", tuple(config.bgp.peers)),))


def _dns(config: AppConfig) -> PartSpec | None:
    if not uses_dns(config):
        return None
    return PartSpec("dns", "rfc2136", "dns", (("dns", config.dns),))


def _hooks(config: AppConfig) -> PartSpec | None:
    if not config.hooks:
        return None
    return PartSpec("hooks", "exec", "hooks", (("hooks", tuple(config.hooks)),))


def _forwarder(config: AppConfig) -> PartSpec | None:
    d = config.dataplane
    if not d.ipvs:
        return None
    pools = tuple(config.bgp.pools) if config.bgp is not None else ()
    settings: tuple[Setting, ...] = (
        ("dataplane.owned_ranges", tuple(d.owned_ranges)), ("bgp.pools", pools),
        ("dataplane.owned_fwmarks", d.owned_fwmarks), ("dataplane.state_file", d.state_file))
    return PartSpec("forwarder", "ipvs", "dataplane.ipvs", settings,
                    fixed=frozenset(p for p, _ in settings), live_start=False, component=False)


def _sync(config: AppConfig) -> PartSpec | None:
    """IPVS connection sync: built whenever IPVS is (a reload may turn dataplane.sync on);
    the reconciler hands it the wanted daemons every pass, so its settings change live."""
    if not config.dataplane.ipvs:
        return None
    return PartSpec("sync", "kernel", "dataplane.sync",
                    (("dataplane.sync", config.dataplane.sync),), component=False)


def _addresses(config: AppConfig) -> PartSpec:
    return PartSpec("addresses", "netlink", "dataplane.vip_interface",
                    (("dataplane.vip_interface", config.dataplane.vip_interface),
                     ("ranges", managed_ranges(config))),
                    fixed=frozenset({"dataplane.vip_interface"}), component=False)


def _sysctls(config: AppConfig) -> PartSpec:
    return PartSpec("sysctls", "proc", "dataplane.manage_sysctls",
                    (("dataplane.manage_sysctls", config.dataplane.manage_sysctls),
                     ("modes", tuple(sorted(sysctl_modes(config)))),
                     ("node.interfaces", tuple(sorted(config.node.client_interfaces())))))


def _api(config: AppConfig) -> PartSpec:
    settings: tuple[Setting, ...] = (("api.socket", config.api.socket),
                                     ("api.mode", config.api.mode))
    return PartSpec("api", "unix", "api", settings, fixed=frozenset(p for p, _ in settings),
                    component=False)


def _metrics(config: AppConfig) -> PartSpec:
    m = config.metrics
    settings: tuple[Setting, ...] = (("metrics.enabled", m.enabled),
                                     ("metrics.address", m.address), ("metrics.port", m.port),
                                     ("metrics.web_config_file", m.web_config_file))
    return PartSpec("metrics", "http", "metrics", settings,
                    fixed=frozenset(p for p, _ in settings), component=False)


def _log(config: AppConfig) -> PartSpec:
    return PartSpec("log", "stderr", "log", (("log.format", config.log.format),
                                             ("log.level", config.log.level)), component=False)


DESCRIBERS: tuple[Callable[[AppConfig], PartSpec | None], ...] = (
    _health, _election, _bgp, _bfd, _l2, _dns, _hooks, _forwarder, _sync, _addresses, _sysctls,
    _api, _metrics, _log)
"""One entry per kind of part, in start order (stopped in reverse)."""


def parts_for(config: AppConfig) -> Mapping[str, PartSpec]:
    """Every part this config needs, by kind, in start order."""
    out: dict[str, PartSpec] = {}
    for describe in DESCRIBERS:
        spec = describe(config)
        if spec is not None:
            out[spec.kind] = spec
    return out


def _changed(old: PartSpec, new: PartSpec) -> list[str]:
    before, after = dict(old.settings), dict(new.settings)
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def diff_parts(old: Mapping[str, PartSpec], new: Mapping[str, PartSpec]) -> tuple[Change, ...]:
    """What a reload from `old` to `new` does to the parts, in start order for starts and
    reconfigurations, stops first. Any `restart_required` means the reload is rejected."""
    stops: list[Change] = []
    rest: list[Change] = []
    for kind in reversed(list(old)):
        if kind not in new:
            spec = old[kind]
            stops.append(Change(kind, "stop") if spec.live_start
                         else Change(kind, "restart_required", spec.path))
    for kind, spec in new.items():
        before = old.get(kind)
        if before is None:
            rest.append(Change(kind, "start") if spec.live_start
                        else Change(kind, "restart_required", spec.path))
            continue
        if before.variant != spec.variant:
            rest.append(Change(kind, "replace", f"{before.variant} -> {spec.variant}")
                        if spec.live_start else Change(kind, "restart_required", spec.path))
            continue
        changed = _changed(before, spec)
        fixed = [p for p in changed if p in spec.fixed]
        rest.extend(Change(kind, "restart_required", p) for p in fixed)
        if changed and not fixed:
            rest.append(Change(kind, "reconfigure", ",".join(changed)))
    return tuple(stops + rest)


def restart_required(changes: tuple[Change, ...]) -> list[str]:
    """The dotted paths that make a reload need a restart (empty: it can go live)."""
    return [c.detail for c in changes if c.action == "restart_required"]
