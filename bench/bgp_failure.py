"""Backend failure to VIP withdrawn at a BIRD peer, end to end through `speaker run`.

    .venv/bin/python bench/bgp_failure.py [RUNS] [PRESET]

The lab demo topology (prefix esbf) with one appliance and one backend (quorum
1); HTTP health check every 250 ms, timeout 200 ms, fall 3, rise 2 (or the named
health PRESET's timers, e.g. `fast`, with fall 3 and rise 2). The clock
starts when the backend's HTTP server is stopped and stops when BIRD no longer
has the VIP (control socket polled every 2 ms); recovery is timed the same way.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bgp_lab import BirdControl, summary

from speaker.lab.netns import Lab
from speaker.lab.topology import VIP, LabSpec, build_demo


def until(check: Any, limit: float = 30.0) -> float:
    """Seconds until `check()` is true (polling every 2 ms)."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit:
            raise TimeoutError("condition not reached")
        time.sleep(0.002)
    return time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print the figures."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    preset = sys.argv[2] if len(sys.argv) > 2 else None
    down: list[float] = []
    up: list[float] = []
    with tempfile.TemporaryDirectory(prefix="esbf-") as tmp, Lab("esbf") as lab:
        demo = build_demo(lab, Path(tmp), LabSpec(appliances=1, backends=1, quorum=1))
        app = demo.appliances[0]
        cfg = yaml.safe_load(app.config_path.read_text())
        timers: dict[str, Any] = ({"preset": preset} if preset else
                                  {"interval": "250ms", "timeout": "200ms"})
        cfg["services"][0]["health"].update({**timers, "fall": 3, "rise": 2})
        for key in ("interval", "timeout") if preset else ():
            cfg["services"][0]["health"].pop(key, None)
        app.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        assert app.proc is not None
        app.ns.stop(app.proc)
        app.start(demo.workdir)
        until(demo.router.socket.exists)
        ctl = BirdControl(demo.router.socket)
        present = f"{VIP}/32"
        until(lambda: present in ctl.query(f"show route {present}"), 60)
        for _ in range(runs):
            time.sleep(0.3)
            start = time.perf_counter()
            demo.stop_backend("be1")
            until(lambda: present not in ctl.query(f"show route {present}"))
            down.append(time.perf_counter() - start)
            time.sleep(0.3)
            start = time.perf_counter()
            demo.start_backend("be1")
            until(lambda: present in ctl.query(f"show route {present}"))
            up.append(time.perf_counter() - start)
    label = f"preset {preset}" if preset else "interval 250 ms"
    print(summary(f"backend stopped -> VIP gone at BIRD ({label}, fall 3)", down))
    print(summary("backend started -> VIP back at BIRD (rise 2)", up))


if __name__ == "__main__":
    main()
