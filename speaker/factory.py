"""Build the real parts of an appliance from its config.

The only place that knows which class implements which kind of part
(`speaker.parts` says which kinds a config needs). `BUILDERS` has one entry per
kind; the supervisor calls `build_part(kind, config, context)` at start-up and
whenever a reload starts or replaces a part. Tests hand the supervisor a
builder that makes `speaker.fakes` instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from speaker.config import AppConfig
from speaker.model import L2Vip
from speaker.parts import managed_ranges, uses_bgp, uses_dns, uses_l2
from speaker.seams import Forwarder, Wake

if TYPE_CHECKING:
    from speaker.timing.proxy import TimingDomain

__all__ = ["BUILDERS", "BuildContext", "StartupError", "build_part", "managed_ranges",
           "uses_bgp", "uses_dns", "uses_l2"]


class StartupError(Exception):
    """The appliance cannot start here (e.g. no IPVS in the kernel); the message says why."""


@dataclass(slots=True)
class BuildContext:
    """What a part needs from the supervisor besides the config."""

    wake: Wake
    runtime_dir: Path
    resolve_conflict: Callable[[L2Vip, str], bool]
    """The running election's duplicate-owner rule (late-bound: survives an engine swap)."""
    handing_over: Callable[[L2Vip], bool] = lambda _vip: False
    """The running election's "this VIP is being handed over" (the L2 responder keeps
    answering until the new owner announces; late-bound like resolve_conflict)."""
    timing: TimingDomain | None = None
    """The timing child (VRRP, ARP/NDP responder), shared by the election and L2 parts."""


def timing_child_wanted(config: AppConfig) -> bool:
    """True when the time-critical work of this config runs in the timing child.
    SPEAKER_TIMING_CHILD=0 keeps it on the supervisor's loop (the single-loop design, for
    comparison benchmarks only)."""
    from speaker.timing.protocol import needs_child

    return needs_child(config) and os.environ.get("SPEAKER_TIMING_CHILD", "1") != "0"


def _timing(config: AppConfig, ctx: BuildContext) -> TimingDomain:
    """The one timing domain of this supervisor (created on first use)."""
    if ctx.timing is None:
        from speaker.timing.proxy import TimingDomain

        ctx.timing = TimingDomain(config, ctx.wake)
        ctx.timing.prespawn()  # its imports overlap the rest of the supervisor's start-up
    else:
        ctx.timing.reconfigure(config)
    return ctx.timing


def _forwarder(config: AppConfig, ctx: BuildContext) -> Forwarder:
    """The IPVS forwarder, or StartupError naming the missing kernel module."""
    from dataplane.ipvs.detect import IpvsUnavailableError, require_ipvs
    from dataplane.ipvs.forwarder import IpvsForwarder
    from dataplane.ipvs.ownership import Ownership

    try:
        require_ipvs()
    except IpvsUnavailableError as exc:
        raise StartupError(f"{exc} (or set dataplane.ipvs: false for announce-only)") from None
    marks = config.dataplane.owned_fwmarks
    ownership = Ownership(
        vip_ranges=tuple(r for r in config.dataplane.owned_ranges + (
            config.bgp.pools if config.bgp else [])),
        fwmarks=range(marks[0], marks[1] + 1) if marks else range(0),
    )
    config.dataplane.state_file.parent.mkdir(parents=True, exist_ok=True)
    return IpvsForwarder(ownership, state_file=config.dataplane.state_file)


def _health(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.health import HealthChecker

    return HealthChecker(config, ctx.wake)


def _election(config: AppConfig, ctx: BuildContext) -> object:
    if timing_child_wanted(config):
        return _timing(config, ctx).election
    from speaker.election import make_election

    return make_election(config, ctx.wake)


def _bgp(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.bgp import ExaBgpSpeaker

    return ExaBgpSpeaker(config, ctx.wake, runtime_dir=ctx.runtime_dir / "bgp")


def _l2(config: AppConfig, ctx: BuildContext) -> object:
    if timing_child_wanted(config):
        return _timing(config, ctx).l2
    from speaker.l2 import L2Responder

    # a duplicate owner is resolved by the election's rule (lower priority yields)
    return L2Responder(config, ctx.wake, conflict_hook=ctx.resolve_conflict,
                       handover_hook=ctx.handing_over)


def _bfd(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.bfd.runner import BfdRunner

    return BfdRunner(config, ctx.wake)


def _dns(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.dns import DnsPublisher

    return DnsPublisher(config, ctx.wake)


def _hooks(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.hooks import HookRunner

    return HookRunner(config)


def _addresses(config: AppConfig, ctx: BuildContext) -> object:
    from dataplane.addresses import VipAddresses

    return VipAddresses(config.dataplane.vip_interface, managed_ranges(config))


def _sync(config: AppConfig, ctx: BuildContext) -> object:
    from dataplane.connsync import KernelConnSync

    return KernelConnSync()


def _sysctls(config: AppConfig, ctx: BuildContext) -> object:
    from speaker.sysctls import SysctlGuard

    return SysctlGuard(config, ctx.wake)


Builder = Callable[[AppConfig, BuildContext], object]
BUILDERS: dict[str, Builder] = {
    "health": _health, "election": _election, "bgp": _bgp, "bfd": _bfd, "l2": _l2, "dns": _dns,
    "hooks": _hooks, "forwarder": _forwarder, "sync": _sync, "addresses": _addresses,
    "sysctls": _sysctls,
}
"""One builder per kind of part that is an object (api, metrics, log are the daemon's)."""


def build_part(kind: str, config: AppConfig, ctx: BuildContext) -> object | None:
    """The real part of `kind` for `config` (None: a kind the daemon handles itself)."""
    builder = BUILDERS.get(kind)
    return None if builder is None else builder(config, ctx)

