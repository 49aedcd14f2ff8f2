"""The demo topology: a BIRD router, two appliances, HTTP backends and a client.

    client ── r1 (BIRD, AS 65000) ── front switch ── lb1, lb2 (speaker run) ── back switch ── be1..3

Addresses (TEST-NET only): front 192.0.2.0/24, backends 198.51.100.0/25,
client link 198.51.100.128/25, VIP 203.0.113.10 announced by BGP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speaker.api.client import ApiError, request
from speaker.lab.bird import BirdNeighbor, BirdRouter, bird_config
from speaker.lab.netns import Lab, Namespace

VIP = "203.0.113.10"
ROUTER_ASN = 65000
APPLIANCE_ASN = 65010


@dataclass(frozen=True, slots=True)
class LabSpec:
    """The short description a lab is built from."""

    appliances: int = 2
    """Appliance namespaces lb1..lbN, each running `speaker run` (1-9)."""
    backends: int = 3
    """Backend namespaces be1..beM, each running an HTTP server on :8080 (1-50)."""
    quorum: int = 2
    """Minimum healthy backends for the VIP to be announced."""

    def __post_init__(self) -> None:
        if not 1 <= self.appliances <= 9 or not 1 <= self.backends <= 50:
            raise ValueError("a lab has 1-9 appliances and 1-50 backends")
        if not 0 <= self.quorum <= self.backends:
            raise ValueError("quorum must be between 0 and the number of backends")

    def backend_addresses(self) -> dict[str, str]:
        """Backend name -> address (198.51.100.21 upwards)."""
        return {f"be{i}": f"198.51.100.{20 + i}" for i in range(1, self.backends + 1)}




def appliance_config(index: int, workdir: Path, spec: LabSpec | None = None) -> dict[str, Any]:
    """The YAML config of appliance lb<index> in the demo."""
    spec = spec or LabSpec()
    name = f"lb{index}"
    return {
        "node": {"name": name, "router_id": f"192.0.2.1{index}",
                 "interfaces": [{"name": "eth0", "role": "client"},
                                {"name": "eth1", "role": "backend"}],
                 "self_checks": {"uplinks": ["eth0"]}},
        "election": {"engine": "single"},
        "bgp": {"local_asn": APPLIANCE_ASN,
                "peers": [{"name": "r1", "address": "192.0.2.1", "asn": ROUTER_ASN,
                           "local_address": f"192.0.2.1{index}", "hold_time": "9s",
                           "families": ["ipv4-unicast"]}],
                "defaults": {"next_hop": "self", "communities": ["65010:100"]},
                "pools": ["203.0.113.0/24"]},
        "services": [{
            "name": "web", "vip": VIP, "ports": [80], "scheduler": "wlc",
            "backends": [{"address": a, "port": 8080, "name": n}
                         for n, a in spec.backend_addresses().items()],
            "health": {"type": "http", "interval": "250ms", "timeout": "200ms", "rise": 2,
                       "fall": 2, "http": {"path": "/", "expect_status": ["200"]}},
            "quorum": {"min_healthy": spec.quorum, "below": "withdraw"},
        }],
        "dataplane": {"ipvs": False},
        "api": {"socket": str(workdir / f"{name}.sock")},
        "metrics": {"address": "127.0.0.1", "port": 9469},
        "log": {"format": "logfmt", "level": "info"},
    }


@dataclass
class Appliance:
    """One `speaker run` process in its namespace."""

    name: str
    ns: Namespace
    config_path: Path
    socket: Path
    log_path: Path
    proc: subprocess.Popen[Any] | None = None

    def start(self, workdir: Path) -> None:
        """Start `speaker run` in the namespace."""
        log = self.log_path.open("ab")
        self.proc = self.ns.spawn([sys.executable, "-m", "speaker", "run", "-c",
                                   str(self.config_path), "--runtime-dir",
                                   str(workdir / f"{self.name}-run")], stdout=log, stderr=log)
        log.close()

    def api(self, command: str, **args: Any) -> Any:
        """Call the appliance's status API."""
        return request(self.socket, command, **args)

    def status(self) -> dict[str, Any] | None:
        """Status document, or None while the daemon is not answering."""
        try:
            doc: dict[str, Any] = self.api("status")
        except ApiError:
            return None
        return doc

    def metrics(self) -> str:
        """The Prometheus exposition text, fetched inside the namespace."""
        code = ("import urllib.request,sys;"
                "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9469/metrics',"
                "timeout=5).read().decode())")
        return self.ns.run(sys.executable, "-c", code).stdout


@dataclass
class DemoLab:
    """The running demo topology."""

    lab: Lab
    workdir: Path
    router: BirdRouter
    client: Namespace
    spec: LabSpec = field(default_factory=LabSpec)
    appliances: list[Appliance] = field(default_factory=list)
    backends: dict[str, tuple[Namespace, subprocess.Popen[Any] | None]] = field(
        default_factory=dict)

    def start_backend(self, name: str) -> None:
        """(Re)start the HTTP server of one backend."""
        ns, _ = self.backends[name]
        proc = ns.spawn([sys.executable, "-m", "http.server", "8080", "--bind",
                         self.spec.backend_addresses()[name], "--directory",
                         str(self.workdir)])
        self.backends[name] = (ns, proc)

    def stop_backend(self, name: str) -> None:
        """Stop the HTTP server of one backend (its health checks start failing)."""
        ns, proc = self.backends[name]
        if proc is not None:
            ns.stop(proc)
        self.backends[name] = (ns, None)

    def vip_next_hops(self) -> list[str]:
        """Next hops BIRD has for the VIP (one per announcing appliance)."""
        return sorted(self.router.routes().get(f"{VIP}/32", []))

    def wait(self, what: str, predicate: Any, timeout: float = 30.0) -> float:
        """Poll `predicate` until true; return the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(0.02)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def build_demo(lab: Lab, workdir: Path, spec: LabSpec | None = None) -> DemoLab:
    """Create the topology and start BIRD, backends and `speaker run` processes."""
    spec = spec or LabSpec()
    appliances = spec.appliances
    front, back = lab.switch("front"), lab.switch("back")
    r1, client = lab.host("r1"), lab.host("client")
    lab.connect(r1, front, "eth0", ["192.0.2.1/24"])
    lab.wire(r1, client, "eth1", "eth0", ["198.51.100.129/25"], ["198.51.100.130/25"])
    client.run("ip", "route", "add", "default", "via", "198.51.100.129")
    neighbors = [BirdNeighbor(f"lb{i}", f"192.0.2.1{i}", APPLIANCE_ASN)
                 for i in range(1, appliances + 1)]
    router = BirdRouter(r1, workdir, bird_config("192.0.2.1", ROUTER_ASN, neighbors))
    demo = DemoLab(lab, workdir, router, client, spec)
    for name, address in spec.backend_addresses().items():
        ns = lab.host(name)
        lab.connect(ns, back, "eth0", [f"{address}/25"])
        demo.backends[name] = (ns, None)
        demo.start_backend(name)
    for i in range(1, appliances + 1):
        ns = lab.host(f"lb{i}")
        lab.connect(ns, front, "eth0", [f"192.0.2.1{i}/24"])
        lab.connect(ns, back, "eth1", [f"198.51.100.1{i}/25"])
        ns.run("ip", "route", "add", "default", "via", "192.0.2.1")
        cfg = appliance_config(i, workdir, spec)
        path = workdir / f"lb{i}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        app = Appliance(f"lb{i}", ns, path, Path(cfg["api"]["socket"]),
                        workdir / f"lb{i}.log")
        app.start(workdir)
        demo.appliances.append(app)
    return demo


def describe(demo: DemoLab) -> dict[str, Any]:
    """What `speaker lab status` prints."""
    return {
        "namespaces": sorted(demo.lab.namespaces),
        "router": {"sessions": demo.router.session_states(), "vip_next_hops":
                   demo.vip_next_hops()},
        "appliances": {a.name: {"pid": a.proc.pid if a.proc else None,
                                "ready": (a.status() or {}).get("ready", False),
                                "socket": str(a.socket), "log": str(a.log_path)}
                       for a in demo.appliances},
        "workdir": str(demo.workdir),
    }


def to_json(data: Any) -> str:
    """Indented JSON."""
    return json.dumps(data, indent=2, sort_keys=True)
