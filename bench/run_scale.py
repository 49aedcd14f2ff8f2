"""`speaker run` with 10,000 BGP VIPs against a real BIRD: start-up, idle CPU, status,
metrics, and a backend failure while a status storm runs.

    sudo .venv/bin/python bench/run_scale.py [--vips 10000] [--watched 50] [--idle 20]
                                             [--calls 20] [--storm 8]

Topology and config: speaker.lab.scale (namespaces `s3sb-*`; VIPs from 198.18.0.0/15
carried only as BGP routes inside the lab). Prints, one line each:

- start     seconds from spawning `speaker run` to READY (log event `ready`), to
            every unchecked VIP in BIRD's table, and to every VIP (control socket
            polled every 10 ms);
- idle      CPU of the speaker and its children (ExaBGP, timing child) over --idle s,
            as a share of one core, once every route is in;
- status    `status` API round trip (answer read, not parsed) p50/max over --calls
            sequential calls, plus the `speaker status --json` and text CLI wall time;
- metrics   /metrics scrape p50/max over 10 scrapes from inside lb1;
- failure   be1's HTTP server stopped while --storm clients call `status` back to back:
            seconds until BIRD has withdrawn all --watched VIPs, against the health
            timers' bound; how many status answers the storm got meanwhile;
- sigterm   SIGTERM during the storm: seconds until BIRD has no route left, and
            until the process has exited.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speaker.lab.netns import Lab
from speaker.lab.scale import ScaleLab, Timers, raw_status, until

SPEAKER = str(Path(sys.executable).with_name("speaker"))


def p50_max(values: list[float]) -> dict[str, float]:
    """Median and maximum, rounded to ms."""
    return {"p50_s": round(statistics.median(values), 3), "max_s": round(max(values), 3),
            "n": len(values)}


class Storm:
    """`clients` threads calling `status` back to back until stopped."""

    def __init__(self, sock: Path, clients: int) -> None:
        self.sock = sock
        self.counts = {"ok": 0, "busy_or_error": 0, "failed": 0}
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                ok, _size = raw_status(self.sock, timeout=30)
            except OSError:
                self.counts["failed"] += 1
                time.sleep(0.05)
                continue
            self.counts["ok" if ok else "busy_or_error"] += 1
            if ok:
                self.latencies.append(time.monotonic() - start)

    def __enter__(self) -> Storm:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def cli_wall(sock: Path, *args: str) -> float:
    """Wall time of one `speaker status` CLI run (output discarded)."""
    start = time.monotonic()
    subprocess.run([SPEAKER, "status", "-s", str(sock), *args], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False, timeout=60)
    return time.monotonic() - start


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The whole benchmark; one result dict per figure."""
    out: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)
        out.append(row)

    timers = Timers(args.interval, args.timeout, args.fall, 2)
    with tempfile.TemporaryDirectory(prefix="s3sb-") as tmp, Lab("s3sb") as lab:
        scale = ScaleLab(lab, Path(tmp), args.vips, args.watched, timers)
        try:
            emit({"figure": "start", "vips": args.vips, **{
                k: None if v is None else round(v, 2) for k, v in scale.start().items()}})
            time.sleep(3)  # let the first resyncs after start-up settle
            pids = scale.pids()
            before, t0 = scale.cpu_seconds(pids), time.monotonic()
            time.sleep(args.idle)
            share = (scale.cpu_seconds(pids) - before) / (time.monotonic() - t0)
            emit({"figure": "idle", "seconds": args.idle, "core_share": round(share, 3),
                  "processes": len(pids)})
            lat = []
            size = refused = 0
            for _ in range(args.calls):
                time.sleep(0.3)  # past the shared document's max age: every call builds
                start = time.monotonic()
                ok, size = raw_status(scale.sock, timeout=30)
                lat.append(time.monotonic() - start)
                if not ok:  # answered with an error (timeout/busy): counted, not fatal
                    refused += 1
            emit({"figure": "status", **p50_max(lat), "bytes": size, "refused": refused,
                  "cli_json_s": round(cli_wall(scale.sock, "--json"), 3),
                  "cli_text_s": round(cli_wall(scale.sock), 3),
                  "cli_no_backends_s": round(cli_wall(scale.sock, "--no-backends"), 3)})
            scraped = scale.scrape(10)
            emit({"figure": "metrics", **p50_max(scraped["seconds"]),
                  "bytes": scraped["bytes"]})
            with Storm(scale.sock, args.storm) as storm:
                time.sleep(2)
                with contextlib.suppress(TimeoutError):  # checked VIPs may be flapping
                    until(lambda: scale.routes() >= args.vips, 30, "all routes", 0.01)
                total = scale.routes()
                present = total - (args.vips - args.watched)  # checked VIPs announced now
                scale.stop_backend("be1")
                gone = until(lambda: scale.routes() <= args.vips - args.watched, 60,
                             "watched VIPs withdrawn", 0.002)
                answered = storm.counts["ok"]
                emit({"figure": "failure", "withdrawn_s": round(gone, 3),
                      "watched_announced_at_failure": present,
                      "health_bound_s": round(timers.detection_bound(), 3),
                      "storm_clients": args.storm, "storm": dict(storm.counts),
                      "storm_status": p50_max(storm.latencies) if storm.latencies else None,
                      "answered_before_withdrawal": answered})
                time.sleep(1)
                start = time.monotonic()
                scale.sigterm()
                withdrawn = until(lambda: scale.routes() == 0, 60, "all withdrawn", 0.002)
                code = scale.stop()
                emit({"figure": "sigterm", "all_withdrawn_s": round(withdrawn, 3),
                      "exit_s": round(time.monotonic() - start, 3), "code": code})
        finally:
            scale.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vips", type=int, default=10000)
    parser.add_argument("--watched", type=int, default=50)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--storm", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.25,
                        help="HTTP check interval of the watched services (s)")
    parser.add_argument("--timeout", type=float, default=0.2, help="their check timeout (s)")
    parser.add_argument("--fall", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps({"figure": "machine", "load_average": os.getloadavg(),
                      "cpus": os.cpu_count()}), flush=True)
    run(args)
    print(json.dumps({"figure": "machine_after", "load_average": os.getloadavg()}))


if __name__ == "__main__":
    main()
