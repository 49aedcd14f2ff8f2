"""VIP announced or withdrawn -> its DNS record there or gone, end to end.

    .venv/bin/python bench/dns_publish.py [RUNS]

The lab demo topology (prefix ednb) with one appliance running `speaker run` (BGP to
BIRD, HTTP checks with the `fast` preset, one backend, quorum 1) publishing
`web.example.test` to a BIND 9 primary in the router namespace (RFC 2136, TSIG). Each
run stops the backend and times (a) VIP gone at BIRD and (b) the A record gone at
BIND, from the moment the backend stopped; then starts it and times the way back. A
record's delay after the route is the publisher's share (read + update round trips).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from speaker.lab.bind import KEY, SECRET, ZONE, Bind
from speaker.lab.netns import Lab
from speaker.lab.topology import VIP, LabSpec, build_demo

NAME = f"web.{ZONE}"


def until(check: Callable[[], bool], limit: float = 30.0) -> float:
    """Seconds until `check()` is true."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)
    return time.perf_counter() - start


def line(label: str, values: list[float]) -> str:
    """A summary line in milliseconds."""
    ms = sorted(v * 1000 for v in values)
    return (f"{label}: n={len(ms)} median={statistics.median(ms):.0f} ms "
            f"max={ms[-1]:.0f} ms")


def main() -> None:
    """Run the benchmark and print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    res: dict[str, list[float]] = {k: [] for k in ("route_down", "dns_down", "route_up",
                                                   "dns_up")}
    with tempfile.TemporaryDirectory(prefix="ednb-") as tmp, Lab("ednb") as lab:
        demo = build_demo(lab, Path(tmp), LabSpec(appliances=1, backends=1, quorum=1))
        bind = Bind(demo.router.ns, Path(tmp), ["192.0.2.1"])
        app = demo.appliances[0]
        assert app.proc is not None
        app.ns.stop(app.proc)
        cfg = yaml.safe_load(app.config_path.read_text())
        svc = cfg["services"][0]
        svc["health"] = {"type": "http", "preset": "fast", "http": {"path": "/"}}
        svc["dns"] = {"names": [NAME], "ttl": 5}
        cfg["dns"] = {"servers": [{"address": "192.0.2.1", "zone": ZONE,
                                   "tsig": {"name": KEY, "secret": SECRET}}]}
        app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        app.start(demo.workdir)
        routed = f"{VIP}/32"

        def route() -> bool:
            return routed in demo.router.routes()

        def record() -> bool:
            return bind.lookup(NAME) == [VIP]

        until(lambda: route() and record(), 60)
        for _ in range(runs):
            time.sleep(0.5)
            start = time.perf_counter()
            demo.stop_backend("be1")
            res["route_down"].append(until(lambda: not route()))
            until(lambda: not record())
            res["dns_down"].append(time.perf_counter() - start)
            time.sleep(0.5)
            start = time.perf_counter()
            demo.start_backend("be1")
            res["route_up"].append(until(route))
            until(record)
            res["dns_up"].append(time.perf_counter() - start)
    print(line("backend stopped -> route gone at BIRD", res["route_down"]))
    print(line("backend stopped -> A record gone at BIND", res["dns_down"]))
    print(line("backend started -> route at BIRD", res["route_up"]))
    print(line("backend started -> A record at BIND", res["dns_up"]))


if __name__ == "__main__":
    main()
