"""Storm a running `speaker run` pair; report VRRP advert gaps and ARP answer latency.

Topology (namespaces, prefix `etib`): a switch, appliances a1 (priority 150, the
master under test) and a2 (100), VRRP with the `fast` preset (100 ms adverts),
an L2 service 192.0.2.100 and a second L2 service with 5,000 TCP-checked
backends (ports 10000-14999 on one backend host, one listener process). For
each storm, for N seconds, while the client watches the wire (every advert of
a1, one ARP request for the VIP every 20 ms):

- idle      nothing (baseline);
- reload    back-to-back reloads through the API, alternating a 0.8 MB invalid
            config, a 50,000-deep YAML list and the good config;
- status    2,000 concurrent `status` requests, again and again;
- metrics   300 concurrent /metrics scrapes, again and again;
- flap      the 5,000 backends flap together every second (backend link down/up:
            every check times out, then succeeds again).

    .venv/bin/python bench/storm.py [--seconds 60] [--storms idle,reload,...] [--single-loop]
                                    [--prefix etib]

`--single-loop` runs the appliances with SPEAKER_TIMING_CHILD=0 (VRRP and the
responder on the supervisor's loop: the design before issue 11), for a
before/after comparison. Prints one JSON line per storm and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "l2"))

from l2lab import Group, Segment, Vip, appliance_yaml

from speaker.lab.netns import Lab

HERE = Path(__file__).resolve()
PYTHON = str(HERE.parents[1] / ".venv" / "bin" / "python")
WATCH = str(HERE.parents[1] / "tests" / "isolation" / "wire_watch.py")
STORMS = ("idle", "reload", "status", "metrics", "flap")
BACKENDS = 5000
VIP, POOL_VIP, BACKEND_IP = "192.0.2.100", "192.0.2.101", "192.0.2.31"


def config_text(name: str, router_id: str, prio: int, sock: Path) -> str:
    """The appliance config: the pair's VIP plus a 5,000-backend health-checked service."""
    base = appliance_yaml(name, router_id, [Group("front", 51, prio)],
                          [Vip("web", VIP, "front")], sock)
    lines = [base.rstrip("\n"), "  - name: pool", f"    vip: \"{POOL_VIP}\"", "    ports: [80]",
             "    announce: l2", "    group: front",
             "    health: {type: tcp, interval: 5s, timeout: 500ms, rise: 1, fall: 1}",
             "    backends:"]
    lines += [f"      - {{address: \"{BACKEND_IP}\", port: {10000 + i}}}" for i in range(BACKENDS)]
    return "\n".join(lines) + "\n"


LISTENER = """
import resource, selectors, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))
sel = selectors.DefaultSelector()
for port in range(10000, 10000 + BACKENDS):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        try:
            conn, _ = key.fileobj.accept(); conn.close()
        except OSError:
            pass
""".replace("BACKENDS", str(BACKENDS))


# --- workers (run inside a namespace: `storm.py --worker KIND ...`) --------------------------

async def _status_storm(sock: str, seconds: float, concurrency: int) -> dict[str, int]:
    counts: dict[str, int] = {"ok": 0, "busy": 0, "timeout": 0}

    async def one() -> None:
        try:
            async with asyncio.timeout(20):
                reader, writer = await asyncio.open_unix_connection(sock, limit=1 << 24)
                writer.write(b'{"command": "status"}\n')
                await writer.drain()
                line = await reader.read()
                writer.close()
            answer = json.loads(line)
            key = ("ok" if answer.get("ok") else "busy" if answer.get("error") == "busy"
                   else str(answer.get("error"))[:40])
        except TimeoutError:
            key = "timeout"
        except (OSError, ValueError) as exc:
            key = type(exc).__name__
        counts[key] = counts.get(key, 0) + 1

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return counts


async def _metrics_storm(seconds: float, concurrency: int) -> dict[str, int]:
    counts: dict[str, int] = {}

    async def one() -> None:
        try:
            async with asyncio.timeout(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", 9469)
                writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                data = await reader.read()
                writer.close()
            key = data.split(b" ", 2)[1].decode() if data else "empty"
        except TimeoutError:
            key = "timeout"
        except (OSError, IndexError):
            key = "error"
        counts[key] = counts.get(key, 0) + 1

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.gather(*(one() for _ in range(concurrency)))
    return counts


def worker(kind: str, args: list[str]) -> None:
    """Entry point of the storm workers."""
    if kind == "status":
        result: Any = asyncio.run(_status_storm(args[0], float(args[1]), int(args[2])))
    elif kind == "metrics":
        result = asyncio.run(_metrics_storm(float(args[0]), int(args[1])))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(result))


# --- the bench ---------------------------------------------------------------------------

class Bench:
    """The lab and the pair under storm."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.seg = Segment(lab, workdir, ["a1", "a2"])
        self.lab = lab
        self.backend = lab.host("b")
        lab.connect(self.backend, self.seg.switch, "eth0", [f"{BACKEND_IP}/24"])
        self.listener = self.backend.spawn([PYTHON, "-c", LISTENER])
        self.a1 = self.seg.appliances["a1"]
        self.a2 = self.seg.appliances["a2"]
        for app, rid, prio in ((self.a1, "192.0.2.11", 150), (self.a2, "192.0.2.12", 100)):
            app.config.write_text(config_text(app.name.split("-")[-1], rid, prio, app.sock))
        self.good = self.a1.config.read_text()

    def start(self) -> None:
        self.a1.start()
        self.a1.wait_event("vip_owned", vip=VIP, timeout=60)
        self.a2.start()
        self.a2.wait_event("ready", timeout=60)
        time.sleep(3)
        self.seg.prime(VIP)

    def measure(self, storm: str, seconds: float) -> dict[str, Any]:
        """Run one storm while the client watches adverts and ARP answers."""
        out_v = (self.seg.workdir / f"vrrp-{storm}.json").open("w")
        out_a = (self.seg.workdir / f"arp-{storm}.json").open("w")
        vrrp = self.seg.client.spawn([PYTHON, WATCH, "vrrp", "eth0", str(seconds)], stdout=out_v)
        arp = self.seg.client.spawn([PYTHON, WATCH, "arp", "eth0", VIP, str(seconds), "0.02"],
                                    stdout=out_a)
        out_v.close()
        out_a.close()
        time.sleep(0.5)
        load = self._storm(storm, seconds - 1.0)
        vrrp.wait(timeout=seconds + 60)
        arp.wait(timeout=seconds + 60)
        adverts = json.loads((self.seg.workdir / f"vrrp-{storm}.json").read_text())["sources"]
        requests = json.loads((self.seg.workdir / f"arp-{storm}.json").read_text())["requests"]
        lat = sorted(r["latency_ms"] for r in requests if r["latency_ms"] is not None)
        mine = adverts.get("192.0.2.11", {})
        return {"storm": storm, "seconds": seconds, "adverts": mine.get("adverts", 0),
                "longest_advert_gap_ms": round(1000 * mine.get("longest_gap_s", 0.0), 1),
                "other_masters": sorted(s for s in adverts if s != "192.0.2.11"),
                "arp_requests": len(requests), "arp_answered": len(lat),
                "arp_p50_ms": round(statistics.median(lat), 3) if lat else None,
                "arp_p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 3) if lat else None,
                "arp_max_ms": round(lat[-1], 3) if lat else None, "load": load}

    def _storm(self, storm: str, seconds: float) -> dict[str, Any]:
        if storm == "idle":
            time.sleep(seconds)
            return {}
        if storm == "reload":
            return self._reloads(seconds)
        if storm == "status":
            proc = self.a1.ns.run(PYTHON, str(HERE), "--worker", "status", str(self.a1.sock),
                                  str(seconds), "2000", timeout=seconds + 120)
            return dict(json.loads(proc.stdout))
        if storm == "metrics":
            proc = self.a1.ns.run(PYTHON, str(HERE), "--worker", "metrics", str(seconds), "300",
                                  timeout=seconds + 120)
            return dict(json.loads(proc.stdout))
        return self._flap(seconds)

    def _reloads(self, seconds: float) -> dict[str, Any]:
        bad_big = self.good + "".join(f"bogus_{i}: {{x: [1, 2, 3]}}\n" for i in range(40_000))
        deep = "services: " + "[" * 50_000 + "]" * 50_000 + "\n"
        counts: dict[str, Any] = {"rejected": 0, "accepted": 0}
        deadline = time.monotonic() + seconds
        i = 0
        from speaker.api.client import ApiError, request

        while time.monotonic() < deadline:
            text = (bad_big, deep, self.good)[i % 3]
            self.a1.config.write_text(text)
            try:
                ok = bool(request(self.a1.sock, "reload", timeout=60).get("ok"))
            except ApiError:
                ok = False
            counts["accepted" if ok else "rejected"] += 1
            i += 1
        self.a1.config.write_text(self.good)
        try:
            request(self.a1.sock, "reload", timeout=60)
        except ApiError as exc:  # slow under load: the next storm starts anyway
            counts["final_reload_error"] = str(exc)
        return counts

    def _flap(self, seconds: float) -> dict[str, Any]:
        flips = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.backend.run("ip", "link", "set", "eth0", "down")
            time.sleep(1.0)
            self.backend.run("ip", "link", "set", "eth0", "up")
            time.sleep(1.0)
            flips += 2
        return {"flips": flips, "backends": BACKENDS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--storms", default=",".join(STORMS))
    parser.add_argument("--single-loop", action="store_true")
    parser.add_argument("--prefix", default="etib",
                        help="namespace prefix (another lab may run beside this one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.worker:
        worker(args.worker, rest)
        return
    if args.single_loop:
        os.environ["SPEAKER_TIMING_CHILD"] = "0"
    results = []
    with tempfile.TemporaryDirectory(prefix=f"{args.prefix}-") as tmp, \
            Lab(args.prefix) as lab:
        bench = Bench(lab, Path(tmp))
        bench.start()
        for storm in args.storms.split(","):
            result = bench.measure(storm, args.seconds)
            result["design"] = "single-loop" if args.single_loop else "timing-child"
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"\n{'storm':8} {'adverts':>7} {'max gap ms':>10} {'ARP p50':>8} {'p99':>8} "
          f"{'max':>8} {'answered':>9}")
    for r in results:
        print(f"{r['storm']:8} {r['adverts']:7d} {r['longest_advert_gap_ms']:10.1f} "
              f"{r['arp_p50_ms'] or 0:8.3f} {r['arp_p99_ms'] or 0:8.3f} {r['arp_max_ms'] or 0:8.3f}"
              f" {r['arp_answered']:4d}/{r['arp_requests']}")


if __name__ == "__main__":
    main()
