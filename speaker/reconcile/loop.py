"""The reconcile loop: wake on events (coalesced) or a periodic resync, then
observe -> desired -> plan -> apply, and keep what status needs to show.

`speaker_vip_announced` is exported from what the parts report after the pass
(acked BGP routes, VIPs the responder answers for), not from the decision; the
series of a VIP that left the config are removed. A service removed by a reload
keeps its IPVS services (weight 0) and address for its drain_time.

IPVS is observed two ways. The periodic resync (at least every
``resync_interval``, and the pass after any failure) dumps the kernel's table
(``forwarder.observe()``) to heal what someone else changed. A pass woken by an
event in between plans against ``forwarder.known()``: the last dump plus the ops
applied since, so one health flap costs one netlink op, not a dump of every
service (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dataplane.connsync import ConnSyncState
from dataplane.ipvs.model import IpvsTable, ServiceKey
from dataplane.ipvs.plan import DelService
from speaker.config import AppConfig
from speaker.logs import event_log
from speaker.metrics import APPLIANCE_HEALTHY, RECONCILE_DURATION, VIP_ANNOUNCED
from speaker.model import BgpAnnouncement, IPAddress, L2Vip, VipDecision
from speaker.reconcile.apply import Parts, apply
from speaker.reconcile.connsync import desired_daemons, sysctl_modes
from speaker.reconcile.desired import (
    Desired,
    Leaving,
    leaving_services,
    with_leaving,
)
from speaker.reconcile.incremental import Change, DesiredCache
from speaker.reconcile.inputs import ApplianceHealth, Drains
from speaker.reconcile.plan import Observed, plan
from speaker.reconcile.plan_dirty import plan_dirty
from speaker.reconcile.selfcheck import appliance_health, link_is_up
from speaker.seams import Election, HealthSource

LOG = event_log(__name__)
DNS_STOP_S = 3.0
"""How long a planned stop waits for DNS claims to be withdrawn."""


@dataclass(slots=True)
class PassResult:
    """Outcome of one reconcile pass."""

    ok: bool
    ops: int
    duration: float
    finished: float
    errors: list[str] = field(default_factory=list)


class Reconciler:
    """Drives the parts towards the desired state. One instance per appliance."""

    def __init__(self, config: AppConfig, parts: Parts, health: HealthSource,
                 election: Election, *, clock: Callable[[], float] = time.monotonic,
                 resync_interval: float = 2.0,
                 link_up: Callable[[str], bool] = link_is_up) -> None:
        self.config = config
        self.parts = parts
        self.health = health
        self.election = election
        self.clock = clock
        self.resync_interval = resync_interval
        self.link_up = link_up
        self.drains = Drains()
        self.shutting_down = False
        self.last: PassResult | None = None
        self.last_success: float | None = None
        self.desired: Desired | None = None
        self.appliance = ApplianceHealth()
        APPLIANCE_HEALTHY.set(1)
        self.passes = 0
        self._event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._penalties: dict[str, int] = {}
        self._last_dump: float | None = None
        self.dumps = 0
        self.on_first_success: Callable[[], None] | None = None
        self.leaving: tuple[Leaving, ...] = ()
        self._exported: set[tuple[str, str]] = set()
        self._gauges: dict[tuple[str, str], Any] = {}
        self._series_list: list[tuple[IPAddress, tuple[str, str], Any]] = []
        self._series_config: AppConfig | None = None
        self.cache = DesiredCache()
        self.change: Change | None = None
        """The services the last compute() recomputed (None: all of them)."""
        self.full_plans = 0
        self._seen: tuple[frozenset[BgpAnnouncement], frozenset[L2Vip]] = (
            frozenset(), frozenset())
        """Routes accepted and L2 VIPs owned as the last pass left them."""
        """Passes that planned every service (the others planned only what changed)."""

    def wake(self, event: str) -> None:
        """Ask for a pass soon; many wake-ups before it runs make one pass."""
        LOG.debug("wake", cause=event)
        self._event.set()

    def set_penalty(self, source: str, penalty: int) -> None:
        """Record one source's priority penalty (self-health, drain); the election gets
        the largest, so one source clearing its penalty never cancels another's."""
        self._penalties[source] = penalty
        worst = max(self._penalties.values())
        reasons = ",".join(sorted(k for k, v in self._penalties.items() if v and v == worst))
        self.election.set_penalty(worst, reasons)

    def reconfigure(self, config: AppConfig) -> None:
        """Adopt a new validated config (the parts were reconfigured by the caller).
        IPVS services it drops drain for their service's drain_time first."""
        if self.parts.forwarder is not None:
            now = self.clock()
            self.leaving = tuple(x for x in self.leaving if x.until > now) + leaving_services(
                self.config, config, now)
        self.config = config
        self.wake("config_reloaded")

    def locked(self) -> asyncio.Lock:
        """Held during a pass: `async with reconciler.locked():` swaps parts safely."""
        return self._lock

    def replace_election(self, election: Election) -> None:
        """A reload replaced the election engine: it gets the current penalty."""
        self.election = election
        if self._penalties:
            worst = max(self._penalties.values())
            reasons = ",".join(sorted(k for k, v in self._penalties.items()
                                      if v and v == worst))
            election.set_penalty(worst, reasons)
        self.wake("election_replaced")

    async def run(self) -> None:
        """Reconcile on every wake-up and at least every resync_interval."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires (CPython gh-86296), hanging shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_interval):
                    await self._event.wait()
            self._event.clear()
            await self.reconcile_once()

    def _dump_due(self, now: float) -> bool:
        """True when this pass must dump IPVS rather than trust ``known()``."""
        return self._last_dump is None or now - self._last_dump >= self.resync_interval

    async def observe(self, dump: bool = True, addresses: bool = True) -> Observed:
        """What the parts report now; IPVS dumped, or as known since the last dump.
        Without `addresses` the VIP addresses are not listed (a pass between resyncs
        that plans only changed services never touches them)."""
        listed = (await asyncio.to_thread(self.parts.addresses.list) if addresses
                  else frozenset())
        ipvs = IpvsTable()
        if self.parts.forwarder is not None:
            read = self.parts.forwarder.observe if dump else self.parts.forwarder.known
            ipvs = await asyncio.to_thread(read)
        return Observed(
            addresses=frozenset(listed),
            bgp=self.parts.bgp.accepted() if self.parts.bgp is not None else frozenset(),
            l2=self.parts.l2.owned() if self.parts.l2 is not None else frozenset(),
            ipvs=ipvs,
        )

    def compute(self, now: float) -> Desired:
        """Desired state from the current inputs (and self-health from the last pass)."""
        leadership = self.election.leadership()
        health = self.health.snapshot()
        desired, self.change = self.cache.compute(
            self.config, health, leadership, self.drains, now,
            appliance=self.appliance, shutting_down=self.shutting_down)
        self._update_self_health(desired.decisions)
        if self.leaving:
            self.change = None  # leaving services change the tables: plan everything
            self.leaving = tuple(x for x in self.leaving if x.until > now)
            desired = with_leaving(desired, self.leaving, now)
        return desired

    def _update_self_health(self, decisions: tuple[VipDecision, ...]) -> None:
        appliance = appliance_health(self.config, decisions, self.link_up)
        if appliance != self.appliance:
            LOG.warning("appliance_health", healthy=appliance.healthy,
                        reason=",".join(appliance.reasons) or "ok")
            self.appliance = appliance
            APPLIANCE_HEALTHY.set(int(appliance.healthy))
            penalty = 0 if appliance.healthy else self.config.node.self_checks.priority_penalty
            self.set_penalty("self_health", penalty)
            self.wake("appliance_health_changed")

    async def reconcile_once(self) -> PassResult:
        """One pass: observe, compute, plan, apply. Never raises for a part's failure."""
        async with self._lock:
            start = self.clock()
            errors: list[str] = []
            ops_count = 0
            try:
                dump = self._dump_due(start)
                desired = self.compute(start)
                change = None if dump else self.change
                observed = await self.observe(dump, addresses=change is None)
                if dump:
                    self._last_dump, self.dumps = start, self.dumps + 1
                if change is not None and (observed.bgp != self._seen[0]
                                           or observed.l2 != self._seen[1]):
                    # the speaker or responder holds other than the last pass left:
                    # plan everything (set comparisons in C, no per-route Python)
                    change = None
                    listed = await asyncio.to_thread(self.parts.addresses.list)
                    observed = replace(observed, addresses=frozenset(listed))
                if self.parts.forwarder is None:  # announce-only: nothing to program
                    observed = replace(observed, ipvs=desired.ipvs)
                if change is None:
                    self.full_plans += 1
                    ops = plan(desired, observed, self.owner(desired))
                else:
                    ops = plan_dirty(desired, observed, change, self.cache.parts_of_vip,
                                     self.owner(desired))
                ops_count = len(ops)
                result = await apply(ops, observed, self.parts)
                errors = [f"{phase.name.lower()}: {why}" for phase, why in result.errors]
                errors += await self._sync_connections(dump)
                self._seen = (
                    self.parts.bgp.accepted() if self.parts.bgp is not None else frozenset(),
                    self.parts.l2.owned() if self.parts.l2 is not None else frozenset())
                self.desired = desired
                self._export(None if change is None else change.dirty)
                self._publish_dns()
                self._notify_hooks()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # observe failed: retried on the next pass
                LOG.error("reconcile_failed", reason=type(exc).__name__, error=str(exc))
                errors = [f"observe: {type(exc).__name__}: {exc}"]
            finished = self.clock()
            duration = finished - start
            RECONCILE_DURATION.observe(duration)
            self.passes += 1
            self.last = PassResult(not errors, ops_count, duration, finished, errors)
            if errors:
                self._last_dump = None  # unsure what the kernel holds: dump next pass
            else:
                first = self.last_success is None
                self.last_success = finished
                if first and self.on_first_success is not None:
                    self.on_first_success()
            return self.last

    async def _sync_connections(self, verify: bool) -> list[str]:
        """Sync daemons follow the election (see speaker.reconcile.connsync)."""
        if self.parts.sync is None:
            return []
        state = ConnSyncState(desired_daemons(self.config, self.election.leadership()),
                              sysctl_modes(self.config), self.config.dataplane.manage_sysctls)
        try:
            ops = await asyncio.to_thread(self.parts.sync.set, state, verify)
        except Exception as exc:  # the kernel refused: retried on the next pass
            LOG.error("sync_daemon_failed", reason=type(exc).__name__, error=str(exc))
            return [f"sync: {exc}"]
        for op in ops:
            LOG.info("sync_daemon", reason="election_follow", op=str(op))
        return []

    def owner(self, desired: Desired) -> Callable[[ServiceKey], bool]:
        """A configured service is ours; any other one only if the forwarder says so."""
        forwarder = self.parts.forwarder
        wanted = desired.ipvs.services
        if forwarder is None:
            return lambda key: key in wanted
        return lambda key: key in wanted or forwarder.owned(key)

    def _export(self, only: tuple[int, ...] | None = None) -> None:
        """speaker_vip_announced from what the parts report, per configured VIP and mode
        the VIP uses; series of VIPs (or modes) no longer configured are removed.
        With `only` (a pass between resyncs), just those services' series are set."""
        if only is not None:
            self._export_some(only)
            return
        bgp = ({a.prefix.network_address for a in self.parts.bgp.announced()}
               if self.parts.bgp is not None else set())
        l2 = {v.address for v in self.parts.l2.owned()} if self.parts.l2 is not None else set()
        series: set[tuple[str, str]] = set()
        for vip, key, gauge in self._series():
            series.add(key)
            gauge.set(int(vip in (bgp if key[1] == "bgp" else l2)))
        for vip_text, mode in self._exported - series:
            self._gauges.pop((vip_text, mode), None)
            with contextlib.suppress(KeyError):
                VIP_ANNOUNCED.remove(vip_text, mode)
        self._exported = series

    def _series(self) -> list[tuple[IPAddress, tuple[str, str], Any]]:
        """(VIP, (vip label, mode), its gauge) per configured VIP and mode, made once
        per config: looking a labelled child up costs microseconds, 10,000 per pass."""
        if self._series_config is not self.config:
            out = []
            for svc in self.config.services:
                for mode in ("bgp", "l2"):
                    if svc.announce in (mode, "both"):
                        key = (str(svc.vip), mode)
                        gauge = self._gauges.get(key)
                        if gauge is None:
                            gauge = self._gauges[key] = VIP_ANNOUNCED.labels(
                                vip=key[0], mode=mode)
                        out.append((svc.vip, key, gauge))
            self._series_list, self._series_config = out, self.config
        return self._series_list

    def _export_some(self, indexes: tuple[int, ...]) -> None:
        """The series of a few services: is one of their routes (as decided now or
        before this pass) reported announced, is their L2 VIP owned?"""
        if not indexes:
            return
        bgp_now = self.parts.bgp.announced() if self.parts.bgp is not None else frozenset()
        l2_now = self.parts.l2.owned() if self.parts.l2 is not None else frozenset()
        before = self.change.before if self.change is not None else ()
        for svc in (self.config.services[i] for i in indexes):
            parts = (*self.cache.parts_of_vip(svc.vip), *before)
            if svc.announce in ("bgp", "both"):
                up = any(p.announcement is not None and p.decision.vip == svc.vip
                         and p.announcement in bgp_now for p in parts)
                VIP_ANNOUNCED.labels(vip=str(svc.vip), mode="bgp").set(int(up))
            if svc.announce in ("l2", "both"):
                up = any(p.l2 is not None and p.decision.vip == svc.vip and p.l2 in l2_now
                         for p in parts)
                VIP_ANNOUNCED.labels(vip=str(svc.vip), mode="l2").set(int(up))

    def _live_vips(self) -> set[IPAddress]:
        """VIPs announced now, as the parts report them (not as decided)."""
        live = {v.address for v in self.parts.l2.owned()} if self.parts.l2 is not None else set()
        if self.parts.bgp is not None:
            live |= {a.prefix.network_address for a in self.parts.bgp.announced()}
        return live

    def _publish_dns(self) -> None:
        """Tell the DNS part which names to serve: those whose VIP is announced now."""
        dns = self.parts.dns
        if dns is None:
            return
        live = self._live_vips()
        dns.set({name: svc.vip for svc in self.config.services
                 if svc.dns is not None and svc.vip in live for name in svc.dns.names})

    def _notify_hooks(self) -> None:
        """Tell the hook runner what is led and announced now."""
        hooks = self.parts.hooks
        if hooks is None:
            return
        live = self._live_vips()
        leaders = frozenset(g for g, lead in self.election.leadership().items() if lead.leader)
        hooks.observe(leaders, {s.name: s.vip for s in self.config.services if s.vip in live})

    async def shutdown(self, keep: bool = False,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Planned stop: withdraw every announcement and stop answering ARP/NDP; then,
        unless `keep` (dataplane.keep_on_stop), wait the longest drain_time (only when
        IPVS forwards: established connections finish) and remove the VIP addresses and
        the IPVS services this appliance programmed."""
        self.shutting_down = True
        async with asyncio.timeout(30):
            await self.reconcile_once()
            if self.parts.bgp is not None:
                await self.parts.bgp.withdraw_all()
            if self.parts.l2 is not None:
                await self.parts.l2.set(frozenset())
        if self.parts.dns is not None and not await self.parts.dns.withdraw_all(DNS_STOP_S):
            LOG.warning("dns_withdraw_incomplete", reason="timeout", limit_s=DNS_STOP_S)
        self._export()
        if keep:
            LOG.info("stop_keeps_forwarding", reason="keep_on_stop")
            return
        forwarder = self.parts.forwarder
        if forwarder is not None and self.config.services:
            wait = max(s.drain_time for s in self.config.services)
            LOG.info("stop_draining", reason="drain_time", seconds=wait)
            await sleep(wait)
        async with self._lock:
            try:
                if forwarder is not None:
                    table = await asyncio.to_thread(forwarder.observe)
                    ops = [DelService(k) for k in table.services if forwarder.owned(k)]
                    await asyncio.to_thread(forwarder.apply, ops)
                for address in await asyncio.to_thread(self.parts.addresses.list):
                    await asyncio.to_thread(self.parts.addresses.remove, address)
            except Exception as exc:
                LOG.error("stop_cleanup_failed", reason=type(exc).__name__, error=str(exc))
                return
        LOG.info("stop_cleaned_up", reason="planned_stop")
