"""Program IPVS in the guest and read it back: every scheduler, method, protocol, family."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vm.machine import Lab

pytestmark = pytest.mark.vm

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "fo", "ovf", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")


def sync(lab: Lab, specs: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = lab.vm.py(
        f"from tests.vm.guest_helpers import sync\nresult = sync({specs!r})")
    return result


def observe(lab: Lab) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = lab.vm.py(
        "from tests.vm.guest_helpers import observe\nresult = observe()")
    return result


@pytest.fixture
def clean(lab: Lab) -> Lab:
    lab.vm.run("ipvsadm", "-C")
    return lab


def test_program_and_read_back(clean: Lab) -> None:
    specs = [{"vip": "203.0.113.10", "port": 80, "sched": "wrr", "dests": [
        {"addr": "198.51.100.11", "weight": 3}, {"addr": "198.51.100.12", "weight": 1},
    ]}]
    result = sync(clean, specs)
    assert result == {"sent": 3, "failures": []}
    [svc] = observe(clean)
    assert svc["key"] == "tcp:203.0.113.10:80"
    assert svc["sched"] == "wrr"
    assert [(d["addr"], d["weight"], d["method"]) for d in svc["dests"]] == [
        ("198.51.100.11", 3, "nat"), ("198.51.100.12", 1, "nat")]
    listing = clean.vm.run("ipvsadm", "-Ln")
    assert "203.0.113.10:80 wrr" in listing
    assert "198.51.100.11:80" in listing and "Masq" in listing
