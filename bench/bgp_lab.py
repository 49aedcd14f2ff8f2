"""Shared set-up of the BGP benchmarks: one appliance (ExaBGP) and one BIRD peer.

Namespaces use the prefix `esbb` (the tests use `esb`). BIRD is queried over
its control socket directly (~30 us a query) instead of spawning birdc.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from speaker.lab.bird import BirdControl
from speaker.lab.netns import Lab
from tests.bgp.conftest import SpeakerThread, appliance_config
from tests.bgp.routers import Bird, Neighbor, make_router

PREFIX = "esbb"



@dataclass
class Rig:
    """The running benchmark set-up."""

    lab: Lab
    bird: Bird
    ctl: BirdControl
    speaker: SpeakerThread


@contextmanager
def rig(graceful_restart: bool = False, reactor_speed: float | None = None) -> Iterator[Rig]:
    """BIRD in esbb-r1, ExaBGP in esbb-a1, the speaker in a thread of this process."""
    with tempfile.TemporaryDirectory(prefix="esbb-") as tmp, Lab(PREFIX) as lab:
        sw = lab.switch("sw")
        r1, a1 = lab.host("r1"), lab.host("a1")
        lab.connect(r1, sw, "eth0", ["192.0.2.1/24"])
        lab.connect(a1, sw, "eth0", ["192.0.2.10/24"])
        bird = make_router("bird", r1, Path(tmp) / "bird", 65001, "192.0.2.1",
                           [Neighbor("192.0.2.10", 65010)])
        assert isinstance(bird, Bird)
        config = appliance_config("a1", [{"name": "r1", "address": "192.0.2.1", "asn": 65001,
                                          "families": ["ipv4-unicast"]}],
                                  graceful_restart=graceful_restart)
        speaker = SpeakerThread(config, Path(tmp) / "run", f"{PREFIX}-a1",
                                reactor_speed=reactor_speed)
        try:
            ctl = _connect(bird)
            yield Rig(lab, bird, ctl, speaker)
        finally:
            speaker.stop()
            bird.stop()


def _connect(bird: Bird) -> BirdControl:
    import time
    for _ in range(100):
        try:
            return BirdControl(bird.sock)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("BIRD control socket did not appear")


def summary(name: str, values: list[float]) -> str:
    """median / p99 / max in ms."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{name}: n={len(values)} median={statistics.median(values) * 1000:.1f} ms "
            f"p99={p99 * 1000:.1f} ms max={ordered[-1] * 1000:.1f} ms")
