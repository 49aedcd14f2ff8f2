"""BGP + BFD end to end: `speaker run` appliances peering with a BIRD router whose
config is `speaker router-config --vendor bird` of the appliances (so the router
runs exactly the BFD timers the appliances do). Used by the lab test and by
bench/bfd_failover.py.

    r1 (BIRD, 192.0.2.1) ── front switch ── lb1 (192.0.2.11), lb2 (192.0.2.12)
                                              └── back switch ── be1 (198.51.100.21)

Both appliances announce VIP 203.0.113.10 (ECMP); be1 accepts TCP on 8080 (the
VIP's health check) and on `checks` more ports (load: one TCP check per port
every `check_interval`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speaker.api.client import ApiError, request
from speaker.lab.bird import BirdControl, BirdRouter
from speaker.lab.netns import Lab, Namespace

VIP = "203.0.113.10"
LOAD_VIP = "203.0.113.20"
BACKEND = "198.51.100.21"
LOAD_PORT = 9000
_LISTENER = """
import asyncio, sys
async def main():
    ports = [8080, *range({first}, {first} + {n})]
    async def close(r, w):
        w.close()
    servers = [await asyncio.start_server(close, "{addr}", p, backlog=512) for p in ports]
    await asyncio.Event().wait()
asyncio.run(main())
"""


def appliance_config(index: int, workdir: Path, bfd: dict[str, Any] | bool,
                     checks: int = 0, check_interval: str = "100ms") -> dict[str, Any]:
    """Config of lb<index>: one peer (r1) with `bfd`, the VIP, optional load checks."""
    name = f"lb{index}"
    services: list[dict[str, Any]] = [{
        "name": "web", "vip": VIP, "ports": [80],
        "backends": [{"address": BACKEND, "port": 8080, "name": "be1"}],
        "health": {"type": "tcp", "interval": "250ms", "timeout": "200ms", "rise": 2,
                   "fall": 2},
        "quorum": {"min_healthy": 1, "below": "withdraw"}}]
    if checks:
        services.append({
            "name": "load", "vip": LOAD_VIP, "ports": [80],
            "backends": [{"address": BACKEND, "port": LOAD_PORT + i, "name": f"p{i}"}
                         for i in range(checks)],
            "health": {"type": "tcp", "interval": check_interval, "timeout": "80ms",
                       "rise": 2, "fall": 3},
            "quorum": {"min_healthy": 1, "below": "withdraw"}})
    return {
        "node": {"name": name, "router_id": f"192.0.2.1{index}",
                 "interfaces": [{"name": "eth0", "role": "client"},
                                {"name": "eth1", "role": "backend"}]},
        "bgp": {"local_asn": 65010, "pools": ["203.0.113.0/24"],
                "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000,
                           "local_address": f"192.0.2.1{index}", "hold_time": "9s",
                           "families": ["ipv4-unicast"], "bfd": bfd}]},
        "services": services,
        "dataplane": {"ipvs": False},
        "api": {"socket": str(workdir / f"{name}.sock")},
        "metrics": {"address": "127.0.0.1", "port": 9469},
        "log": {"format": "logfmt", "level": "info"},
    }


@dataclass
class Appliance:
    """One `speaker run` in its namespace, and its switch port."""

    name: str
    ns: Namespace
    port: str
    config_path: Path
    socket: Path
    log_path: Path
    workdir: Path
    proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        """Start `speaker run`."""
        with self.log_path.open("ab") as log:
            self.proc = self.ns.spawn([sys.executable, "-m", "speaker", "run", "-c",
                                       str(self.config_path), "--runtime-dir",
                                       str(self.workdir / f"{self.name}-run")],
                                      stdout=log, stderr=log)

    def status(self) -> dict[str, Any] | None:
        """The status document, or None while it does not answer."""
        try:
            doc: dict[str, Any] = request(self.socket, "status", timeout=5)
        except (ApiError, OSError):
            return None
        return doc

    def peer(self) -> dict[str, Any]:
        """The r1 row of status.peers (empty while not answering)."""
        doc = self.status() or {}
        return next((p for p in doc.get("peers", []) if p["name"] == "r1"), {})

    def metrics(self) -> str:
        """Prometheus text, fetched inside the namespace."""
        code = ("import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
                "'http://127.0.0.1:9469/metrics',timeout=5).read().decode())")
        return self.ns.run(sys.executable, "-c", code).stdout


@dataclass
class Rig:
    """The running topology."""

    lab: Lab
    workdir: Path
    front: Namespace
    router: BirdRouter
    ctl: BirdControl
    apps: dict[str, Appliance] = field(default_factory=dict)

    def die(self, name: str) -> float:
        """Appliance death: cut its switch port, then SIGKILL `speaker run` (ExaBGP and
        the BFD child die with it: PR_SET_PDEATHSIG). Returns perf_counter() at the
        moment the port-down command had returned."""
        app = self.apps[name]
        self.lab.port_down(self.front, app.port)
        cut = time.perf_counter()
        if app.proc is not None:
            app.ns.stop(app.proc, sig=9)
            app.proc = None
        return cut

    def revive(self, name: str) -> None:
        """Port up, `speaker run` again."""
        app = self.apps[name]
        self.lab.port_up(self.front, app.port)
        app.start()


def wait(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last={last!r}")


def build(lab: Lab, workdir: Path, bfd: dict[str, dict[str, Any] | bool],
          checks: int = 0, check_interval: str = "100ms") -> Rig:
    """Namespaces, backend listener, appliances started, BIRD from router-config."""
    front, back = lab.switch("front"), lab.switch("back")
    r1 = lab.host("r1")
    lab.connect(r1, front, "eth0", ["192.0.2.1/24"])
    be1 = lab.host("be1")
    lab.connect(be1, back, "eth0", [f"{BACKEND}/25"])
    be1.spawn([sys.executable, "-c", _LISTENER.format(first=LOAD_PORT, n=checks,
                                                      addr=BACKEND)])
    apps: dict[str, Appliance] = {}
    for index, name in enumerate(sorted(bfd), start=1):
        ns = lab.host(name)
        port = lab.connect(ns, front, "eth0", [f"192.0.2.1{index}/24"])
        lab.connect(ns, back, "eth1", [f"198.51.100.1{index}/25"])
        ns.run("ip", "route", "add", "default", "via", "192.0.2.1")
        path = workdir / f"{name}.yaml"
        cfg = appliance_config(index, workdir, bfd[name], checks, check_interval)
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        apps[name] = Appliance(name, ns, port, path, Path(cfg["api"]["socket"]),
                               workdir / f"{name}.log", workdir)
    text = subprocess.run([sys.executable, "-m", "speaker", "router-config", "--vendor", "bird",
                           *(a for app in apps.values() for a in ("-c", str(app.config_path)))],
                          capture_output=True, text=True, check=True).stdout
    router = BirdRouter(r1, workdir, text)
    rig = Rig(lab, workdir, front, router, BirdControl(router.socket), apps)
    for app in apps.values():
        app.start()
    return rig
