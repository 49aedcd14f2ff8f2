"""Wire the supervisor to the outside: API handlers, metrics endpoint, exit codes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from speaker.api.metrics_http import MetricsServer
from speaker.api.server import ApiServer, Encoded
from speaker.api.status_body import MAX_AGE_S, SharedStatus
from speaker.api.webconfig import WebConfigWatcher
from speaker.config import AppConfig
from speaker.explain import explain
from speaker.factory import StartupError
from speaker.gcpolicy import freeze_long_lived
from speaker.logs import event_log, setup_logging
from speaker.metrics import REGISTRY
from speaker.preview import preview_reload
from speaker.supervisor import Supervisor

LOG = event_log(__name__)
DRAIN_PENALTY = 254
STATUS_CACHE_S = MAX_AGE_S
"""How long one status document answers a burst of callers (if nothing moved)."""


def _drain_key(sup: Supervisor, args: dict[str, Any]) -> tuple[str, str | None]:
    service = args.get("service")
    backend = args.get("backend")
    if service is None:
        if backend is not None:
            raise ValueError("a backend drain needs its service")
        return "appliance", None
    svc = sup.config.service(str(service))
    if svc is None:
        raise ValueError(f"no service named {service!r}")
    if backend is None:
        return "service", svc.name
    labels = [svc.backend_label(b) for b in svc.backends]
    if backend not in labels:
        raise ValueError(f"service {svc.name} has no backend {backend!r} (has: {labels})")
    return "backend", str(backend)


def register_handlers(api: ApiServer, sup: Supervisor) -> None:
    """The API commands: ping, status, reload, drain, undrain, plan, explain."""
    rec = sup.reconciler

    async def ping(_args: dict[str, Any]) -> str:
        return "pong"

    shared = SharedStatus(sup, STATUS_CACHE_S)

    async def status(_args: dict[str, Any]) -> Encoded:
        # built slice by slice (the loop keeps running) and shared by every caller of
        # a burst (2,000 at once) while nothing it shows moved: speaker.api.status_body
        return await shared.get()

    async def reload(_args: dict[str, Any]) -> dict[str, Any]:
        return await sup.reload()  # the reload ends with its own reconcile pass

    async def drain(args: dict[str, Any], on: bool = True) -> dict[str, Any]:
        kind, name = _drain_key(sup, args)
        since = time.monotonic() if on else None
        if kind == "appliance":
            rec.drains = rec.drains.with_appliance(since)
            rec.set_penalty("drained", DRAIN_PENALTY if on else 0)
            if on:
                await sup.built.election.resign(None)
            else:
                sup.built.election.reclaim(None)
        elif kind == "service" and name is not None:
            rec.drains = rec.drains.with_service(name, since)
        elif name is not None:
            rec.drains = rec.drains.with_backend((str(args["service"]), name), since)
        LOG.info("drain" if on else "undrain", target=kind, name=name or "", reason="operator")
        await rec.reconcile_once()
        return rec.drains.as_dict()

    async def undrain(args: dict[str, Any]) -> dict[str, Any]:
        return await drain(args, on=False)

    async def plan(args: dict[str, Any]) -> dict[str, Any]:
        path = args.get("path")
        if not isinstance(path, str) or not Path(path).is_absolute():
            raise ValueError("plan needs the candidate config's absolute path")
        return await preview_reload(sup, Path(path))

    async def explain_vip(args: dict[str, Any]) -> dict[str, Any]:
        return explain(sup, str(args.get("vip", "")))

    for name, handler in (("ping", ping), ("status", status), ("reload", reload),
                          ("drain", drain), ("undrain", undrain), ("plan", plan),
                          ("explain", explain_vip)):
        api.register(name, handler)


async def _serve(sup: Supervisor, config: AppConfig) -> int:
    api = ApiServer(config.api.socket, config.api.mode)
    register_handlers(api, sup)
    extra = [api.run]
    if config.metrics.enabled:
        web_file = config.metrics.web_config_file
        metrics = MetricsServer(REGISTRY, config.metrics.address, config.metrics.port,
                                web=WebConfigWatcher(Path(web_file)) if web_file else None)
        await metrics.start()
        extra.append(metrics.run)
    freeze_long_lived()  # the config and the parts live as long as the process
    return await sup.run(extra=extra)


def run_daemon(config_path: Path, config: AppConfig, runtime_dir: Path | None = None) -> int:
    """Run the appliance until SIGTERM; 0 on a planned stop, 1 if it cannot start."""
    setup_logging(config.log.format, config.log.level)
    try:
        sup = Supervisor(config_path, config, runtime_dir=runtime_dir)
    except (StartupError, NotImplementedError, LookupError, OSError) as exc:
        # the host cannot run this config (no IPVS, no such VIP interface, ...): a clear
        # message, never a traceback
        _startup_failed("unsupported_host", str(exc))
        return 1
    try:
        return asyncio.run(_serve(sup, config))
    except OSError as exc:
        _startup_failed("os_error", str(exc))
        return 1


def _startup_failed(reason: str, error: str) -> None:
    """One structured line; the plain sentence too only for a person at a terminal (the
    log goes to the same stderr, so a journal would otherwise show the hint twice)."""
    LOG.error("startup_failed", reason=reason, error=error)
    if sys.stderr.isatty():
        print(f"speaker: cannot start: {error}", file=sys.stderr)
