"""`speaker run`: one asyncio TaskGroup that runs every part of the appliance.

Start-up: load the config (a bad one exits 1 with every error listed), build
the parts `speaker.parts.parts_for(config)` names, serve metrics and the API,
reconcile; READY=1 goes to systemd after the first successful pass. SIGHUP (or
`speaker reload`) loads the file again: a bad config is rejected and the running
one kept; a good one is diffed part by part (`diff_parts`) and the parts are
started, stopped, replaced or reconfigured live inside the running TaskGroup; a
change that needs a restart rejects the reload with `restart_required: <path>`.
SIGTERM/SIGINT withdraw every announcement, then (after the drain time) remove
the VIP addresses and IPVS services unless `dataplane.keep_on_stop`; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from speaker.config import AppConfig, ConfigError, ConfigUnreadableError
from speaker.config.isolated import load_isolated
from speaker.factory import BuildContext, build_part
from speaker.gcpolicy import freeze_long_lived
from speaker.ipvs_stats import IpvsStatsPoller
from speaker.logs import event_log, setup_logging
from speaker.metrics import BUILD_INFO, CONFIG_RELOAD_OK, CONFIG_RELOAD_TIME, REGISTRY
from speaker.model import IPNetwork, L2Vip
from speaker.parts import (
    Change,
    PartSpec,
    diff_parts,
    managed_ranges,
    parts_for,
    restart_required,
)
from speaker.reconcile.apply import Parts
from speaker.reconcile.loop import DNS_STOP_S, Reconciler
from speaker.reload_report import config_changes
from speaker.sdnotify import Notifier
from speaker.seams import (
    BgpSpeaker,
    Component,
    ConnSync,
    DnsRecords,
    Election,
    HealthSource,
    Hooks,
    L2Announcer,
)

if TYPE_CHECKING:
    from speaker.bfd.runner import BfdRunner

LOG = event_log(__name__)
PartBuilder = Callable[[str, AppConfig, BuildContext], object | None]
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 15.0
"""How long the first reconcile waits for parts in another process (the timing child)."""
"""Longest a stopping part may take to withdraw/release before it is cancelled anyway."""


def package_version() -> str:
    """Installed version of edge-speaker."""
    try:
        return version("edge-speaker")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(slots=True)
class Built:
    """The running parts, as status and the API see them."""

    parts: Parts
    health: HealthSource
    election: Election
    bfd: BfdRunner | None = None


class Supervisor:
    """Owns the config, the parts and the reconcile loop of one appliance."""

    def __init__(self, config_path: Path, config: AppConfig, *,
                 build_part: PartBuilder = build_part, runtime_dir: Path | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.runtime_dir = runtime_dir or Path("/run/edge-speaker")
        self.notifier = notifier or Notifier()
        self.started = time.monotonic()
        self.last_reload: dict[str, Any] = {"ok": True, "at": time.time(), "errors": [],
                                            "changes": []}
        self._stop = asyncio.Event()
        self._wake_target: Reconciler | None = None
        self._build = build_part
        self._ctx = BuildContext(self._wake, self.runtime_dir, self._resolve_conflict,
                                 self._handing_over)
        self.specs: Mapping[str, PartSpec] = parts_for(config)
        self.objects: dict[str, object] = {}
        for kind in self.specs:
            part = build_part(kind, config, self._ctx)
            if part is not None:
                self.objects[kind] = part
        self.parts = Parts(cast(Any, self.objects["addresses"]),
                           cast(Any, self.objects.get("forwarder")))
        self._sync_parts()
        self.reconciler = Reconciler(config, self.parts, self.health, self.election)
        self._wake_target = self.reconciler
        self.reconciler.on_first_success = self._on_ready
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reload_lock = asyncio.Lock()
        self._vips_seen: set[IPNetwork] = {ip_network(svc.vip) for svc in config.services}
        self.ipvs_stats: IpvsStatsPoller | None = None
        if self.parts.forwarder is not None:
            self.ipvs_stats = IpvsStatsPoller(self.parts.forwarder, lambda: self.config)
            with contextlib.suppress(ValueError):  # already registered (tests)
                REGISTRY.register(self.ipvs_stats)
        BUILD_INFO.info({"version": package_version()})
        CONFIG_RELOAD_OK.set(1)
        CONFIG_RELOAD_TIME.set(time.time())

    # --- the running parts ----------------------------------------------------------------

    @property
    def health(self) -> HealthSource:
        """The health checker."""
        return cast(HealthSource, self.objects["health"])

    @property
    def election(self) -> Election:
        """The running election engine."""
        return cast(Election, self.objects["election"])

    @property
    def built(self) -> Built:
        """The running parts (status, API)."""
        return Built(self.parts, self.health, self.election,
                     cast("BfdRunner | None", self.objects.get("bfd")))

    def _resolve_conflict(self, vip: L2Vip, other_mac: str) -> bool:
        hook = getattr(self.objects.get("election"), "resolve_conflict", None)
        return True if hook is None else bool(hook(vip, other_mac))

    def _handing_over(self, vip: L2Vip) -> bool:
        hook = getattr(self.objects.get("election"), "handing_over", None)
        return False if hook is None else bool(hook(vip))

    def _wake(self, event: str) -> None:
        if self._wake_target is not None:
            self._wake_target.wake(event)

    def _on_ready(self) -> None:
        LOG.info("ready", reason="first_reconcile_ok", services=len(self.config.services))
        self.notifier.ready(self.summary())

    def components(self) -> list[Any]:
        """The running parts that are tasks (each has run/reconfigure/status)."""
        return [self.objects[k] for k, spec in self.specs.items()
                if spec.component and k in self.objects]

    def summary(self) -> str:
        """One line for systemd's STATUS=."""
        desired = self.reconciler.desired
        if desired is None:
            return "starting"
        up = sum(1 for d in desired.decisions if d.bgp.value in ("announced", "backup_route",
                                                                 "fail_open")
                 or d.l2.value in ("announced", "fail_open"))
        return f"{up}/{len(desired.decisions)} VIPs announced; last reload " + (
            "ok" if self.last_reload["ok"] else "REJECTED")

    def _start_task(self, kind: str) -> None:
        part = self.objects.get(kind)
        if self._group is not None and part is not None and self.specs[kind].component:
            self._tasks[kind] = self._group.create_task(cast(Component, part).run(),
                                                        name=f"part:{kind}")

    async def _stop_task(self, kind: str) -> None:
        task = self._tasks.pop(kind, None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    # --- reload -------------------------------------------------------------------------

    def _reject(self, errors: list[str], reason: str, changes: list[str]) -> dict[str, Any]:
        CONFIG_RELOAD_OK.set(0)
        LOG.error("config_reload_rejected", reason=reason, errors=len(errors),
                  first_error=errors[0], file=str(self.config_path))
        self.last_reload = {"ok": False, "at": time.time(), "errors": errors,
                            "changes": changes}
        self.notifier.status(self.summary())
        return self.last_reload

    async def reload(self) -> dict[str, Any]:
        """:meth:`_reload`, with RELOADING=1 to systemd before and READY=1 (STATUS= says
        whether it was adopted) after, whatever the outcome."""
        self.notifier.reloading()
        try:
            return await self._reload()
        finally:
            self.notifier.reloaded(self.summary())

    async def _reload(self) -> dict[str, Any]:
        """Load the config file again; adopt it only if it is valid and can go live.

        Steps: (1) load and validate the file; (2) diff the parts; reject with
        `restart_required: <path>` what cannot change live; (3) build the parts to
        start (a failure rejects the reload, nothing changed yet); (4) under the
        reconciler's lock stop, replace, reconfigure and start parts; (5) reconcile."""
        async with self._reload_lock:
            if self._stop.is_set():
                return self._reject(["the appliance is stopping"], "stopping", [])
            # (1) load and validate in a limited child process (speaker.config.isolated):
            # no input can crash or block the supervisor
            try:
                config = await load_isolated(self.config_path)
            except (ConfigError, ConfigUnreadableError) as exc:
                errors = ([str(i) for i in exc.issues] if isinstance(exc, ConfigError)
                          else [str(exc)])
                return self._reject(errors, "invalid_config", [])
            # (2) what it does to the parts
            specs = parts_for(config)
            changes = diff_parts(self.specs, specs)
            blocked = restart_required(changes)
            if blocked:
                return self._reject([f"restart_required: {p}" for p in blocked],
                                    "restart_required", [])
            # (3) build new parts first: a failure leaves everything as it was
            fresh: dict[str, object] = {}
            try:
                for change in changes:
                    if change.action in ("start", "replace"):
                        part = self._build(change.kind, config, self._ctx)
                        if part is not None:
                            fresh[change.kind] = part
            except Exception as exc:  # a part that cannot be built rejects the reload
                return self._reject([f"{type(exc).__name__}: {exc}"], "part_failed", [])
            # (4) carry it out
            old = self.config
            async with self.reconciler.locked():
                await self._carry_out(changes, config, specs, fresh)
            lines = [str(c) for c in changes if c.action != "reconfigure"]
            lines += config_changes(old, config)
            CONFIG_RELOAD_OK.set(1)
            CONFIG_RELOAD_TIME.set(time.time())
            self.last_reload = {"ok": True, "at": time.time(), "errors": [], "changes": lines}
            freeze_long_lived(collect=False)  # the new config is long-lived (speaker.gcpolicy)
            LOG.info("config_reloaded", reason="valid_config", services=len(config.services),
                     changes=len(lines))
            for line in lines:
                LOG.info("reload_change", reason="config_changed", change=line)
        # (5) make it true now
        await self.reconciler.reconcile_once()
        return self.last_reload

    async def _carry_out(self, changes: tuple[Change, ...], config: AppConfig,
                         specs: Mapping[str, PartSpec], fresh: dict[str, object]) -> None:
        for change in changes:
            if change.action in ("stop", "replace"):
                await self._stop_part(change.kind)
        self.config = config
        self.specs = specs
        for kind, part in fresh.items():
            self.objects[kind] = part
        self._sync_parts()
        for kind in self.specs:  # every surviving part adopts the new config
            part = self.objects.get(kind)
            if kind not in fresh and part is not None and hasattr(part, "reconfigure"):
                cast(Component, part).reconfigure(config)
        if any(c.kind == "log" for c in changes):
            setup_logging(config.log.format, config.log.level)
        self._vips_seen.update(ip_network(svc.vip) for svc in config.services)
        # a VIP that left the config stays managed so that it is removed from lo
        self.parts.addresses.set_ranges(tuple(dict.fromkeys(
            (*managed_ranges(config), *self._vips_seen))))
        self.reconciler.reconfigure(config)
        if "election" in fresh:
            self.reconciler.replace_election(self.election)
            if self.reconciler.drains.appliance is not None:  # still drained: hand over
                await self.election.resign(None)
        for kind in fresh:
            self._start_task(kind)

    async def _stop_part(self, kind: str) -> None:
        """Withdraw/release what the part announced, then end its task."""
        part = self.objects.get(kind)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                if kind == "bgp" and part is not None:
                    await cast(BgpSpeaker, part).withdraw_all()
                elif kind == "l2" and part is not None:
                    await cast(L2Announcer, part).set(frozenset())
                elif kind == "dns" and part is not None:
                    await cast(DnsRecords, part).withdraw_all(DNS_STOP_S)
        except TimeoutError:
            LOG.warning("part_stop_timeout", reason="timeout", part=kind)
        await self._stop_task(kind)
        self.objects.pop(kind, None)
        if kind == "bgp":
            from speaker.bgp import metrics as bgp_metrics

            for metric in (bgp_metrics.SESSION_UP, bgp_metrics.ANNOUNCED_PREFIXES):
                metric.clear()
        self._sync_parts()
        LOG.info("part_stopped", reason="config_changed", part=kind)

    def _sync_parts(self) -> None:
        """The reconciler's view of the parts it drives (None: not running)."""
        self.parts.bgp = cast(BgpSpeaker | None, self.objects.get("bgp"))
        self.parts.l2 = cast(L2Announcer | None, self.objects.get("l2"))
        self.parts.dns = cast(DnsRecords | None, self.objects.get("dns"))
        self.parts.hooks = cast(Hooks | None, self.objects.get("hooks"))
        self.parts.sync = cast(ConnSync | None, self.objects.get("sync"))

    def request_stop(self) -> None:
        """Begin a planned stop (SIGTERM)."""
        self._stop.set()

    def _reload_soon(self) -> None:
        if self._group is not None:
            self._group.create_task(self._reload_logged(), name="reload")

    async def _reload_logged(self) -> None:
        try:
            result = await self.reload()
        except Exception as exc:  # a SIGHUP must never take the appliance down
            LOG.error("sighup_reload_failed", reason=type(exc).__name__, error=str(exc))
            return
        for line in result["errors"] or result["changes"]:
            LOG.info("sighup_reload", reason="ok" if result["ok"] else "rejected", line=line)

    # --- run ----------------------------------------------------------------------------

    async def _wait_components_ready(self) -> None:
        """Parts in another process (the timing child) say when they run; reconcile after,
        so READY means adverts and ARP answers are being handled."""
        for component in self.components():
            wait_ready = getattr(component, "wait_ready", None)
            if wait_ready is None:
                continue
            try:
                async with asyncio.timeout(READY_TIMEOUT_S):
                    await wait_ready()
            except TimeoutError:
                LOG.error("component_not_ready", reason="timeout",
                          component=type(component).__name__, timeout_s=READY_TIMEOUT_S)

    async def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        while True:
            await asyncio.sleep(interval)
            last = self.reconciler.last
            if last is not None and time.monotonic() - last.finished < max(
                    3 * self.reconciler.resync_interval, 2 * interval):
                self.notifier.watchdog()
                self.notifier.status(self.summary())

    async def run(self, extra: list[Callable[[], Any]] | None = None) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for kind in self.specs:
                    self._start_task(kind)
                await self._wait_components_ready()
                others = [group.create_task(self.reconciler.run()),
                          group.create_task(self._watchdog())]
                if self.ipvs_stats is not None:
                    others.append(group.create_task(self.ipvs_stats.run()))
                others.extend(group.create_task(start()) for start in extra or [])
                self.reconciler.wake("start")
                await self._stop.wait()
                LOG.info("stopping", reason="sigterm")
                self.notifier.stopping()
                async with self._reload_lock:  # no reload half-done while stopping
                    await self.reconciler.shutdown(keep=self.config.dataplane.keep_on_stop)
                    for task in [*others, *self._tasks.values()]:
                        task.cancel()
        finally:
            self._group = None
            if self.ipvs_stats is not None:
                with contextlib.suppress(KeyError):
                    REGISTRY.unregister(self.ipvs_stats)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        LOG.info("stopped", reason="planned")
        return 0
