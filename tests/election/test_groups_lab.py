"""Three appliances, two groups spread active/active, one appliance dies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from l2lab import Group, Segment, Vip

from speaker.lab.netns import Lab, leftover_namespaces, require_root

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not require_root(), reason="needs root and netns")]

VIPS = [Vip("web", "192.0.2.100", "blue"), Vip("api", "192.0.2.101", "green")]
PRIORITIES = {"a1": (200, 100), "a2": (100, 200), "a3": (150, 150)}


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Segment]:
    with Lab("esl") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2", "a3"])
    assert not leftover_namespaces("esl")


def test_two_groups_spread_over_three_appliances(trio: Segment) -> None:
    apps = trio.appliances
    for name, (blue, green) in PRIORITIES.items():
        trio.configure(name, [Group("blue", 61, blue), Group("green", 62, green)], VIPS).start()
    apps["a1"].wait_event("vip_owned", vip="192.0.2.100", timeout=15)
    apps["a2"].wait_event("vip_owned", vip="192.0.2.101", timeout=15)
    for vip in ("192.0.2.100", "192.0.2.101"):
        trio.prime(vip)
    assert trio.who_answers("192.0.2.100") == {apps["a1"].mac}
    assert trio.who_answers("192.0.2.101") == {apps["a2"].mac}
    status = apps["a3"].status()["components"]["VrrpElection"]["groups"]
    assert {g: s["state"] for g, s in status.items()} == {"blue": "backup", "green": "backup"}

    apps["a3"].mark()
    trio.death(apps["a1"])  # blue moves to a3 (150 > 100); green stays on a2
    apps["a3"].wait_event("leader_gained", group="blue")
    trio.wait_neigh("192.0.2.100", apps["a3"].mac)
    assert trio.who_answers("192.0.2.100") == {apps["a3"].mac}
    assert trio.who_answers("192.0.2.101") == {apps["a2"].mac}
    assert not apps["a3"].leader("green")
