"""The timing child under supervision: state mirrored, crash -> restart, dies with its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from speaker.childproc import Backoff, ChannelError, decode_body, encode_frame
from speaker.config import parse_text
from speaker.metrics import REGISTRY
from speaker.timing.proxy import TimingDomain

CONFIG = """
node: {name: lb1, router_id: 192.0.2.10, interfaces: [{name: lo}]}
election: {engine: single, groups: [{name: front}]}
dataplane: {ipvs: false}
services:
  - {name: web, vip: 203.0.113.10, ports: [80], group: front, announce: bgp,
     backends: [{address: 198.51.100.11}], health: {type: none}}
bgp: {local_asn: 65010, peers: [{name: r1, address: 192.0.2.1, asn: 65000}]}
"""


async def until(predicate: object) -> None:
    deadline = time.monotonic() + 20.0
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_child_reports_state_restarts_after_a_crash_and_stops_cleanly() -> None:
    wakes: list[str] = []
    domain = TimingDomain(parse_text(CONFIG), wakes.append)

    async def scenario() -> None:
        runner = asyncio.create_task(domain.election.run())
        await until(lambda: domain.election.leadership().get("front") is not None
                    and domain.election.leadership()["front"].leader)
        assert domain.election.status_name == "SingleElection"
        assert domain.election.status()["process"]["up"] is True  # type: ignore[index]
        await domain.l2.set(frozenset())
        assert domain.l2.owned() == frozenset()
        await until(lambda: REGISTRY.get_sample_value("speaker_leader", {"group": "front"})
                    == 1.0)
        first = domain.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await until(lambda: domain.restarts == 1)
        assert "timing_child_down" in wakes
        await until(lambda: domain.pid != first and domain.election.leadership()["front"].leader)
        second = domain.pid
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        assert second is not None
        await until(lambda: not Path(f"/proc/{second}").exists()
                    or "Z" in Path(f"/proc/{second}/stat").read_text().split()[2])

    asyncio.run(scenario())


DRIVER = """
import asyncio, sys
from speaker.config import parse_text
from speaker.timing.proxy import TimingDomain
domain = TimingDomain(parse_text(sys.stdin.read()), lambda e: None)
async def main():
    task = asyncio.create_task(domain.election.run())
    while domain.pid is None or not domain.election.leadership():
        await asyncio.sleep(0.02)
    print(domain.pid, flush=True)
    await task
asyncio.run(main())
"""


def test_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", DRIVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdin is not None
    assert parent.stdout is not None
    parent.stdin.write(CONFIG)
    parent.stdin.close()
    child = int(parent.stdout.readline())
    parent.kill()  # SIGKILL: no cleanup code runs in the parent
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists()  # PR_SET_PDEATHSIG


def test_frames_are_bounded_and_typed() -> None:
    frame = encode_frame({"type": "ping", "n": 1})
    assert decode_body(frame[4:]) == {"type": "ping", "n": 1}
    for body in (b"[1]", b'{"n": 1}', b"nope"):
        try:
            decode_body(body)
        except ChannelError:
            continue
        raise AssertionError(body)
    try:
        encode_frame({"type": "x", "pad": "a" * 100}, max_frame=50)
    except ChannelError:
        pass
    else:
        raise AssertionError("oversize frame accepted")


def test_backoff_doubles_and_resets_after_a_stable_run() -> None:
    b = Backoff(initial=0.1, ceiling=1.0, stable_after=30)
    assert [b.delay(1) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay(60) == 0.1
