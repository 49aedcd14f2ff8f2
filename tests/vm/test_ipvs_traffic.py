"""Real HTTP traffic: client namespace -> guest IPVS (NAT, DR) -> backend namespaces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.vm.machine import BACKENDS, BACKENDS6, CLIENT, CLIENT6, CLIENT_DR, Lab
from tests.vm.traffic import HttpConnection, http_backends, spread

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def backends(lab: Lab) -> Iterator[list[str]]:
    with http_backends(lab.backends) as names:
        yield names


@pytest.fixture
def vips(lab: Lab, backends: list[str]) -> Iterator[Lab]:
    """Clean IPVS; VIPs on the guest's lo through dataplane.addresses."""
    lab.vm.run("ipvsadm", "-C")
    lab.vm.py("""
from dataplane.addresses import VipAddresses
from ipaddress import ip_address
vip_addresses = VipAddresses("lo")
for a in ("203.0.113.10", "203.0.113.11", "2001:db8:ff::10"):
    vip_addresses.add(ip_address(a))
result = sorted(map(str, vip_addresses.list()))
""")
    yield lab
    lab.vm.run("ipvsadm", "-C")


def sync(lab: Lab, specs: list[dict[str, Any]]) -> None:
    result = lab.vm.py(f"from tests.vm.guest_helpers import sync\nresult = sync({specs!r})")
    assert result["failures"] == []


def service(vip: str, sched: str, weights: list[int], method: str = "nat",
            backends: tuple[str, ...] = BACKENDS, **extra: Any) -> dict[str, Any]:
    return {"vip": vip, "port": 80, "sched": sched, **extra, "dests": [
        {"addr": addr, "weight": w, "method": method}
        for addr, w in zip(backends, weights, strict=False)
    ]}


def test_nat_spread_matches_weights(vips: Lab) -> None:
    sync(vips, [service("203.0.113.10", "wrr", [3, 1, 0])])
    seen = spread(vips.client, "203.0.113.10", 40, source=CLIENT)
    assert seen == {"be0": 30, "be1": 10}


def test_dr_spread_matches_weights(vips: Lab) -> None:
    # Replies go from the backends straight to the client (DR source address).
    sync(vips, [service("203.0.113.11", "wrr", [1, 1, 2], method="dr")])
    seen = spread(vips.client, "203.0.113.11", 40, source=CLIENT_DR)
    assert seen == {"be0": 10, "be1": 10, "be2": 20}


def test_persistence_keeps_a_client_on_one_backend(vips: Lab) -> None:
    sync(vips, [service("203.0.113.10", "rr", [1, 1, 1], persistence=300)])
    seen = spread(vips.client, "203.0.113.10", 12, source=CLIENT)
    assert len(seen) == 1
    assert sum(seen.values()) == 12
    # Without persistence, rr spreads the same client over all three.
    sync(vips, [service("203.0.113.10", "rr", [1, 1, 1])])
    assert set(spread(vips.client, "203.0.113.10", 12, source=CLIENT)) == {"be0", "be1", "be2"}


def test_weight_zero_drains(vips: Lab) -> None:
    sync(vips, [service("203.0.113.10", "rr", [1, 1])])
    open_conn = HttpConnection(vips.client, "203.0.113.10", source=CLIENT)
    try:
        pinned = open_conn.get()
        other = "be1" if pinned == "be0" else "be0"
        weights = [0, 1] if pinned == "be0" else [1, 0]
        sync(vips, [service("203.0.113.10", "rr", weights)])
        assert spread(vips.client, "203.0.113.10", 10, source=CLIENT) == {other: 10}
        # The open connection keeps working, on the drained backend.
        assert [open_conn.get() for _ in range(3)] == [pinned] * 3
    finally:
        open_conn.close()


def test_removing_a_backend_stops_its_traffic(vips: Lab) -> None:
    sync(vips, [service("203.0.113.10", "rr", [1, 1, 1])])
    assert set(spread(vips.client, "203.0.113.10", 9, source=CLIENT)) == {"be0", "be1", "be2"}
    sync(vips, [service("203.0.113.10", "rr", [1, 1])])
    assert spread(vips.client, "203.0.113.10", 10, source=CLIENT) == {"be0": 5, "be1": 5}


def test_ipv6_nat_service(vips: Lab) -> None:
    sync(vips, [service("2001:db8:ff::10", "wrr", [1, 3], backends=BACKENDS6)])
    seen = spread(vips.client, "2001:db8:ff::10", 20, source=CLIENT6)
    assert seen == {"be0": 5, "be1": 15}
