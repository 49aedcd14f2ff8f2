"""`speaker run`: one asyncio TaskGroup that runs every part of the appliance.

Start-up: load the config (a bad one exits 1 with every error listed), build
the parts, serve metrics and the API, reconcile; READY=1 goes to systemd after
the first successful pass. SIGHUP (or `speaker reload`) validates the file
again: a bad config is rejected and the running one kept. SIGTERM/SIGINT
withdraw every announcement, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from speaker.config import AppConfig, ConfigError, ConfigUnreadableError, load_config
from speaker.factory import Built, build_parts
from speaker.ipvs_stats import IpvsStatsPoller
from speaker.logs import event_log
from speaker.metrics import BUILD_INFO, CONFIG_RELOAD_OK, CONFIG_RELOAD_TIME, REGISTRY
from speaker.reconcile.loop import Reconciler
from speaker.sdnotify import Notifier
from speaker.seams import Wake

LOG = event_log(__name__)
BuildParts = Callable[[AppConfig, Wake, Path], Built]


def package_version() -> str:
    """Installed version of edge-speaker."""
    try:
        return version("edge-speaker")
    except PackageNotFoundError:
        return "0+unknown"


class Supervisor:
    """Owns the config, the parts and the reconcile loop of one appliance."""

    def __init__(self, config_path: Path, config: AppConfig, *,
                 build: BuildParts = build_parts, runtime_dir: Path | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config_path = config_path
        self.config = config
        self.runtime_dir = runtime_dir or Path("/run/edge-speaker")
        self.notifier = notifier or Notifier()
        self.started = time.monotonic()
        self.last_reload: dict[str, Any] = {"ok": True, "at": time.time(), "errors": []}
        self._stop = asyncio.Event()
        self._wake_target: Reconciler | None = None
        self.built = build(config, self._wake, self.runtime_dir)
        self.reconciler = Reconciler(config, self.built.parts, self.built.health,
                                     self.built.election)
        self._wake_target = self.reconciler
        self.reconciler.on_first_success = self._on_ready
        self.ipvs_stats: IpvsStatsPoller | None = None
        if self.built.parts.forwarder is not None:
            self.ipvs_stats = IpvsStatsPoller(self.built.parts.forwarder, lambda: self.config)
            with contextlib.suppress(ValueError):  # already registered (tests)
                REGISTRY.register(self.ipvs_stats)
        BUILD_INFO.info({"version": package_version()})
        CONFIG_RELOAD_OK.set(1)
        CONFIG_RELOAD_TIME.set(time.time())

    def _wake(self, event: str) -> None:
        if self._wake_target is not None:
            self._wake_target.wake(event)

    def _on_ready(self) -> None:
        LOG.info("ready", reason="first_reconcile_ok", services=len(self.config.services))
        self.notifier.ready(self.summary())

    def components(self) -> list[Any]:
        """The running parts (each has run/reconfigure/status)."""
        p = self.built.parts
        return [c for c in (self.built.health, self.built.election, p.bgp, p.l2, p.dns,
                            p.hooks, self.built.bfd) if c is not None]

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

    def reload(self) -> dict[str, Any]:
        """Validate the config file again; adopt it only if it is valid. systemd sees
        RELOADING=1 before and READY=1 after, whatever the outcome."""
        self.notifier.reloading()
        try:
            return self._reload()
        finally:
            self.notifier.reloaded(self.summary())

    def _reload(self) -> dict[str, Any]:
        try:
            config = load_config(self.config_path)
        except (ConfigError, ConfigUnreadableError) as exc:
            errors = ([str(i) for i in exc.issues] if isinstance(exc, ConfigError)
                      else [str(exc)])
            CONFIG_RELOAD_OK.set(0)
            LOG.error("config_reload_rejected", reason="invalid_config", errors=len(errors),
                      first_error=errors[0], file=str(self.config_path))
            self.last_reload = {"ok": False, "at": time.time(), "errors": errors}
            return self.last_reload
        for component in self.components():
            component.reconfigure(config)
        self.config = config
        self.reconciler.reconfigure(config)
        CONFIG_RELOAD_OK.set(1)
        CONFIG_RELOAD_TIME.set(time.time())
        self.last_reload = {"ok": True, "at": time.time(), "errors": []}
        LOG.info("config_reloaded", reason="valid_config", services=len(config.services))
        return self.last_reload

    def request_stop(self) -> None:
        """Begin a planned stop (SIGTERM)."""
        self._stop.set()

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
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(c.run()) for c in self.components()]
                tasks.append(group.create_task(self.reconciler.run()))
                tasks.append(group.create_task(self._watchdog()))
                if self.ipvs_stats is not None:
                    tasks.append(group.create_task(self.ipvs_stats.run()))
                tasks.extend(group.create_task(start()) for start in extra or [])
                self.reconciler.wake("start")
                await self._stop.wait()
                LOG.info("stopping", reason="sigterm")
                self.notifier.stopping()
                await asyncio.wait_for(self.reconciler.shutdown(), 30)
                for task in tasks:
                    task.cancel()
        finally:
            if self.ipvs_stats is not None:
                with contextlib.suppress(KeyError):
                    REGISTRY.unregister(self.ipvs_stats)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        LOG.info("stopped", reason="planned")
        return 0
