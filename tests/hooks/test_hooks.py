"""Hooks: which runs a change calls for (pure), and real commands run with timeouts."""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import yaml

from speaker.config import ConfigError, parse_text
from speaker.config.hooks import Hook
from speaker.hooks import HookRunner
from speaker.hooks.runner import runs_for

VIP = ip_address("203.0.113.10")
BASE: dict[str, Any] = {
    "node": {"name": "lb1", "router_id": "192.0.2.10",
             "interfaces": [{"name": "eth0", "role": "client"}]},
    "election": {"groups": [{"name": "default"}, {"name": "g2"}]},
    "services": [{"name": "web", "vip": str(VIP), "ports": [80], "announce": "l2",
                  "backends": [{"address": "198.51.100.11"}]}],
}


def hook(on: str, **extra: Any) -> Hook:
    return Hook.model_validate({"on": on, "command": ["/bin/true"], **extra})


def test_runs_for_each_change_and_filter() -> None:
    hooks = [hook("leader_gained"), hook("leader_lost", group="g2"), hook("vip_announced"),
             hook("vip_withdrawn", service="web")]
    runs = runs_for(hooks, "lb1", frozenset(), frozenset({"default", "g2"}), {}, {"web": VIP})
    events = [dict(r.env)["SPEAKER_EVENT"] for r in runs]
    assert events == ["leader_gained", "leader_gained", "vip_announced"]
    assert dict(runs[2].env)["SPEAKER_VIP"] == str(VIP)
    lost = runs_for(hooks, "lb1", frozenset({"default", "g2"}), frozenset(), {"web": VIP}, {})
    assert [(dict(r.env)["SPEAKER_EVENT"], dict(r.env).get("SPEAKER_GROUP")) for r in lost] == [
        ("leader_lost", "g2"), ("vip_withdrawn", None)]
    assert runs_for(hooks, "lb1", frozenset({"g2"}), frozenset({"g2"}), {"web": VIP},
                    {"web": VIP}) == []


@pytest.mark.parametrize(("hooks", "path"), [
    ([{"on": "leader_gained", "command": ["notify.sh"]}], "hooks[0]"),
    ([{"on": "leader_gained", "command": ["/bin/true"], "service": "web"}], "hooks[0]"),
    ([{"on": "vip_announced", "command": ["/bin/true"], "service": "nope"}],
     "hooks[0].service"),
    ([{"on": "leader_lost", "command": ["/bin/true"], "group": "nope"}], "hooks[0].group"),
    ([{"on": "became_master", "command": ["/bin/true"]}], "hooks[0].on"),
    ([{"on": "leader_lost", "command": ["/bin/true", "a\nb"]}], "hooks[0].command[1]"),
])
def test_bad_hooks_are_rejected_at_their_field(hooks: list[Any], path: str) -> None:
    data = copy.deepcopy(BASE)
    data["hooks"] = hooks
    with pytest.raises(ConfigError) as info:
        parse_text(yaml.safe_dump(data))
    assert path in [i.path for i in info.value.issues]


def test_runner_runs_real_commands_without_blocking(tmp_path: Path) -> None:
    out = tmp_path / "events"
    script = ("import os,sys;open(sys.argv[1],'a').write(os.environ['SPEAKER_EVENT']+' '"
              "+os.environ.get('SPEAKER_GROUP', os.environ.get('SPEAKER_VIP',''))+'\\n')")
    data = copy.deepcopy(BASE)
    data["hooks"] = [{"on": e, "command": [sys.executable, "-c", script, str(out)]}
                     for e in ("leader_gained", "leader_lost", "vip_announced")]
    runner = HookRunner(parse_text(yaml.safe_dump(data)))

    async def scenario() -> None:
        task = asyncio.create_task(runner.run())
        start = time.monotonic()
        runner.observe(frozenset({"default"}), {"web": VIP})
        assert time.monotonic() - start < 0.05  # observe never waits for a command
        runner.observe(frozenset(), {"web": VIP})
        async with asyncio.timeout(20):
            while runner.status()["done"] != 3:  # noqa: ASYNC110 - runner keeps a count
                await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert sorted(out.read_text().splitlines()) == [
        "leader_gained default", "leader_lost default", f"vip_announced {VIP}"]


def test_a_hung_hook_is_killed_at_its_timeout(tmp_path: Path) -> None:
    marker = tmp_path / "late"
    data = copy.deepcopy(BASE)
    data["hooks"] = [{"on": "leader_gained", "timeout": "300ms",
                      "command": ["/bin/sh", "-c", f"sleep 5; touch {marker}"]}]
    runner = HookRunner(parse_text(yaml.safe_dump(data)))

    async def scenario() -> float:
        task = asyncio.create_task(runner.run())
        start = time.monotonic()
        runner.observe(frozenset({"default"}), {})
        async with asyncio.timeout(10):
            while runner.status()["done"] != 1:  # noqa: ASYNC110 - runner keeps a count
                await asyncio.sleep(0.02)
        took = time.monotonic() - start
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return took

    assert asyncio.run(scenario()) < 4.5
    assert runner.status()["last"] == {"leader_gained": {"result": "timeout"}}
    time.sleep(0.2)
    assert not marker.exists()  # the shell's child (sleep) died with its process group
