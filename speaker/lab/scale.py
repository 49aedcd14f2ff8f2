"""A lab for `speaker run` at scale: one appliance, thousands of BGP VIPs, a BIRD peer.

    r1 (BIRD, AS 65000) ── front ── lb1 (speaker run, AS 65010) ── back ── be1, be2

VIPs are /32s from 198.18.0.0/15 (the benchmarking range, carried only as BGP
routes inside the lab namespaces, never routed; DESIGN.md field notes); every
other address is TEST-NET. The first `watched` services have one backend, be1,
checked over HTTP with the given timers (quorum 1): stopping be1 withdraws all of
them. The other services point at be1 and be2 with `health: none` (a config of
10,000 services on a few backends; the health checker checks per service, so
checking all of them would measure the checker, not status or BGP).

Used by bench/run_scale.py and tests/lab/test_status_scale.py; namespaces take
the caller's prefix. Every process is started by this lab and ended by PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import yaml

from speaker.lab.bird import BirdControl, BirdNeighbor, BirdRouter, bird_config
from speaker.lab.netns import Lab, Namespace

BASE = int(IPv4Address("198.18.0.0"))
BE1, BE2 = "198.51.100.21", "198.51.100.22"
APPLIANCE, ROUTER = "192.0.2.11", "192.0.2.1"


def vip(i: int) -> str:
    """The i-th VIP (198.18.0.0 + i)."""
    return str(IPv4Address(BASE + i))


@dataclass(frozen=True, slots=True)
class Timers:
    """HTTP check timers of the watched services."""

    interval: float = 0.25
    timeout: float = 0.2
    fall: int = 3
    rise: int = 2

    def detection_bound(self) -> float:
        """Longest a failure can take to reach `fall` failed checks: `fall` intervals,
        the last check's timeout, and one more interval of schedule jitter."""
        return (self.fall + 1) * self.interval + self.timeout


def config(vips: int, watched: int, sock: Path, timers: Timers) -> dict[str, Any]:
    """The appliance config."""
    check = {"type": "http", "interval": f"{int(timers.interval * 1000)}ms",
             "timeout": f"{int(timers.timeout * 1000)}ms", "rise": timers.rise,
             "fall": timers.fall, "http": {"path": "/", "expect_status": ["200"]}}
    services = []
    for i in range(vips):
        if i < watched:
            svc = {"backends": [{"address": BE1, "port": 8080, "name": "be1"}],
                   "health": check}
        else:
            svc = {"backends": [{"address": BE1, "port": 8080, "name": "be1"},
                                {"address": BE2, "port": 8080, "name": "be2"}],
                   "health": {"type": "none"}}
        services.append({"name": f"s{i}", "vip": vip(i), "ports": [80], **svc,
                         "quorum": {"min_healthy": 1, "below": "withdraw"}})
    return {
        "node": {"name": "lb1", "router_id": APPLIANCE,
                 "interfaces": [{"name": "eth0", "role": "client"},
                                {"name": "eth1", "role": "backend"}]},
        "election": {"engine": "single"},
        "bgp": {"local_asn": 65010,
                "peers": [{"name": "r1", "address": ROUTER, "asn": 65000,
                           "local_address": APPLIANCE, "hold_time": "9s",
                           "families": ["ipv4-unicast"]}],
                "defaults": {"next_hop": "self", "communities": ["65010:100"]},
                "pools": ["198.18.0.0/15"]},
        "services": services,
        "dataplane": {"ipvs": False},
        "api": {"socket": str(sock)},
        "metrics": {"address": "127.0.0.1", "port": 9469},
        "log": {"format": "json", "level": "info"},
    }


def until(check: Callable[[], bool], limit: float, what: str, every: float = 0.005) -> float:
    """Seconds until `check()` holds (TimeoutError after `limit`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > limit:
            raise TimeoutError(f"{what}: not reached in {limit:.0f} s")
        time.sleep(every)
    return time.monotonic() - start


METRICS_SCRAPER = """
import json, sys, time, urllib.request
out = []
for _ in range(int(sys.argv[1])):
    t = time.monotonic()
    body = urllib.request.urlopen("http://127.0.0.1:9469/metrics", timeout=30).read()
    out.append(time.monotonic() - t)
print(json.dumps({"seconds": out, "bytes": len(body)}))
"""


class ScaleLab:
    """The running lab; `start()` launches `speaker run` and returns its start times."""

    def __init__(self, lab: Lab, workdir: Path, vips: int, watched: int,
                 timers: Timers | None = None) -> None:
        self.lab, self.workdir, self.vips, self.watched = lab, workdir, vips, watched
        self.timers = timers or Timers()
        front, back = lab.switch("front"), lab.switch("back")
        r1 = lab.host("r1")
        self.lb1 = lab.host("lb1")
        lab.connect(r1, front, "eth0", [f"{ROUTER}/24"])
        lab.connect(self.lb1, front, "eth0", [f"{APPLIANCE}/24"])
        lab.connect(self.lb1, back, "eth1", ["198.51.100.11/25"])
        self.backends: dict[str, tuple[Namespace, str, subprocess.Popen[Any] | None]] = {}
        for name, address in (("be1", BE1), ("be2", BE2)):
            ns = lab.host(name)
            lab.connect(ns, back, "eth0", [f"{address}/25"])
            self.backends[name] = (ns, address, None)
            self.start_backend(name)
        self.router = BirdRouter(r1, workdir, bird_config(
            ROUTER, 65000, [BirdNeighbor("lb1", APPLIANCE, 65010)]))
        self.ctl = BirdControl(self.router.socket)
        self.sock = workdir / "lb1.sock"
        self.config_path = workdir / "lb1.yaml"
        self.config_path.write_text(yaml.safe_dump(
            config(vips, watched, self.sock, self.timers), sort_keys=False))
        self.log_path = workdir / "lb1.log"
        self.proc: subprocess.Popen[Any] | None = None

    def start_backend(self, name: str) -> None:
        """(Re)start the HTTP server of one backend."""
        ns, address, _ = self.backends[name]
        proc = ns.spawn([sys.executable, "-m", "http.server", "8080", "--bind", address,
                         "--directory", str(self.workdir)])
        self.backends[name] = (ns, address, proc)

    def stop_backend(self, name: str) -> None:
        """Stop one backend's HTTP server (its checks fail from now on)."""
        ns, address, proc = self.backends[name]
        if proc is not None:
            ns.stop(proc)
        self.backends[name] = (ns, address, None)

    def start(self, limit: float = 120.0) -> dict[str, float | None]:
        """Start `speaker run`; seconds from spawn to READY, to every unchecked VIP's
        route at BIRD, and to every route (None if the checked VIPs kept flapping
        for `limit` s after that)."""
        log = self.log_path.open("ab")
        self.proc = self.lb1.spawn(
            [sys.executable, "-m", "speaker", "run", "-c", str(self.config_path),
             "--runtime-dir", str(self.workdir / "lb1-run")], stdout=log, stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        ready = until(self._ready, limit, "READY", 0.02)
        static = ready + until(lambda: self.ctl.count() >= self.vips - self.watched, limit,
                               "the unchecked VIPs' routes at BIRD", 0.01)
        try:
            every: float | None = static + until(lambda: self.ctl.count() >= self.vips,
                                                 limit, "all routes at BIRD", 0.01)
        except TimeoutError:
            every = None
        return {"ready_s": ready, "unchecked_routes_s": static, "all_routes_s": every}

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"speaker run exited {self.proc.returncode}; see {self.log_path}")
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return any('"ready"' in line and "first_reconcile_ok" in line
                   for line in text.splitlines())

    def routes(self) -> int:
        """Routes at BIRD now."""
        return self.ctl.count()

    def pids(self) -> list[int]:
        """The speaker and every descendant (ExaBGP, the timing child), by /proc."""
        assert self.proc is not None  # noqa: S101 - started
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    @staticmethod
    def cpu_seconds(pids: list[int]) -> float:
        """utime + stime of these processes (s)."""
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def scrape(self, count: int) -> dict[str, Any]:
        """`count` /metrics scrapes from inside lb1: seconds each and the body size."""
        out = self.lb1.run(sys.executable, "-c", METRICS_SCRAPER, str(count),
                           timeout=60 + 30 * count).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def stop(self) -> int | None:
        """SIGTERM `speaker run` (by PID) and reap it."""
        if self.proc is None:
            return None
        code = self.lb1.stop(self.proc, timeout=60)
        self.proc = None
        return code

    def sigterm(self) -> None:
        """Send SIGTERM to `speaker run` (by PID) without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def close(self) -> None:
        """Stop what this lab started (the Lab removes the namespaces)."""
        self.stop()
        self.ctl.close()


def raw_status(sock: Path, timeout: float = 10.0) -> tuple[bool, int]:
    """One `status` call without parsing the answer: (answered ok, bytes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(b'{"command": "status"}\n')
        head = b""
        size = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            if len(head) < 16:
                head += chunk[:16]
            size += len(chunk)
            if chunk.endswith(b"\n"):
                break
    return head.startswith(b'{"ok": true'), size
