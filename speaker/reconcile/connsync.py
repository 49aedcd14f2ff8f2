"""Which IPVS sync daemons and kernel settings this appliance wants (pure).

``dataplane.sync.role: follow-leader`` (L2 pairs): the leader of the followed
election group runs the sync *master*, every other appliance a *backup*; the
reconciler re-evaluates this on every pass, so the roles follow the election live
(a backup that becomes leader stops its backup daemon and starts the master, as
keepalived's ``lvs_sync_daemon`` does). ``role: all`` (BGP ECMP): every appliance
runs both, so each one learns every flow any other one forwarded. A shutting-down
appliance keeps its daemons: the last updates still go out while it drains.
"""

from __future__ import annotations

from collections.abc import Mapping

from dataplane.ipvs.syncd import Role, SyncDaemon
from dataplane.sysctl import Mode
from speaker.config import AppConfig
from speaker.model import Leadership


def followed_group(config: AppConfig) -> str | None:
    """The election group whose leader is the sync master."""
    sync = config.dataplane.sync
    if sync.group is not None:
        return sync.group
    return config.election.groups[0].name if config.election.groups else None


def desired_daemons(config: AppConfig,
                    leadership: Mapping[str, Leadership]) -> frozenset[SyncDaemon]:
    """The sync daemons to run now, given this appliance's leadership."""
    sync = config.dataplane.sync
    if not (sync.enabled and config.dataplane.ipvs) or sync.interface is None:
        return frozenset()
    roles: tuple[Role, ...] = ("master", "backup")
    if sync.role == "follow-leader":
        group = followed_group(config)
        lead = group is not None and group in leadership and leadership[group].leader
        roles = ("master",) if lead else ("backup",)
    return frozenset(
        SyncDaemon(role, sync.interface, sync.sync_id, sync.multicast_group, sync.port,
                   sync.ttl, sync.max_packet or 0)
        for role in roles
    )


def sysctl_modes(config: AppConfig) -> frozenset[Mode]:
    """The dataplane sysctl table's modes this config uses (see dataplane.sysctl)."""
    modes: set[Mode] = {svc.forwarding for svc in config.services}
    if any(svc.vip.version == 6 for svc in config.services):
        modes.add("ipv6")
    dp = config.dataplane
    if dp.sync.enabled:
        modes.add("sync")
    if dp.sloppy_tcp:
        modes.add("sloppy_tcp")
    if dp.sloppy_sctp:
        modes.add("sloppy_sctp")
    return frozenset(modes)
