"""Wire the supervisor to the outside: API handlers, metrics endpoint, exit codes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import start_http_server

from speaker.api.server import ApiServer
from speaker.config import AppConfig
from speaker.factory import StartupError
from speaker.logs import event_log, setup_logging
from speaker.metrics import REGISTRY
from speaker.status import status_document
from speaker.supervisor import Supervisor

LOG = event_log(__name__)
DRAIN_PENALTY = 254


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
    """The API commands: ping, status, reload, drain, undrain."""
    rec = sup.reconciler

    async def ping(_args: dict[str, Any]) -> str:
        return "pong"

    async def status(_args: dict[str, Any]) -> dict[str, Any]:
        return status_document(sup)

    async def reload(_args: dict[str, Any]) -> dict[str, Any]:
        return await sup.reload()

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

    for name, handler in (("ping", ping), ("status", status), ("reload", reload),
                          ("drain", drain), ("undrain", undrain)):
        api.register(name, handler)


async def _serve(sup: Supervisor, config: AppConfig) -> int:
    api = ApiServer(config.api.socket, config.api.mode)
    register_handlers(api, sup)
    if config.metrics.enabled:
        start_http_server(config.metrics.port, config.metrics.address, registry=REGISTRY)
        LOG.info("metrics_listening", address=config.metrics.address, port=config.metrics.port)
    return await sup.run(extra=[api.run])


def run_daemon(config_path: Path, config: AppConfig, runtime_dir: Path | None = None) -> int:
    """Run the appliance until SIGTERM; 0 on a planned stop, 1 if it cannot start."""
    setup_logging(config.log.format, config.log.level)
    try:
        sup = Supervisor(config_path, config, runtime_dir=runtime_dir)
    except (StartupError, NotImplementedError, LookupError, OSError) as exc:
        # the host cannot run this config (no IPVS, no such VIP interface, ...): a clear
        # message, never a traceback
        LOG.error("startup_failed", reason="unsupported_host", error=str(exc))
        print(f"speaker: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(sup, config))
    except OSError as exc:
        LOG.error("startup_failed", reason="os_error", error=str(exc))
        print(f"speaker: cannot start: {exc}", file=sys.stderr)
        return 1
