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
    assert "198.51.100.11:80" in listing
    assert "Masq" in listing


@pytest.mark.parametrize("sched", SCHEDULERS)
def test_every_scheduler(clean: Lab, sched: str) -> None:
    specs = [{"vip": "203.0.113.20", "port": 443, "sched": sched,
              "dests": [{"addr": "198.51.100.11"}, {"addr": "198.51.100.12"}]}]
    assert sync(clean, specs)["failures"] == []
    [svc] = observe(clean)
    assert svc["sched"] == sched
    assert len(svc["dests"]) == 2


def test_scheduler_flags_and_change_in_place(clean: Lab) -> None:
    specs: list[dict[str, Any]] = [{"vip": "203.0.113.21", "sched": "mh",
                                    "flags": ["mh-fallback", "mh-port"]}]
    assert sync(clean, specs)["failures"] == []
    assert observe(clean)[0]["flags"] == ["mh-fallback", "mh-port"]
    specs[0].update(sched="sh", flags=["sh-port"], persistence=300)
    result = sync(clean, specs)
    assert result == {"sent": 1, "failures": []}  # one "set", no delete + add
    [svc] = observe(clean)
    assert (svc["sched"], svc["flags"], svc["persistence"]) == ("sh", ["sh-port"], 300)


@pytest.mark.parametrize("method", ["nat", "dr", "tunnel"])
def test_every_forwarding_method_reads_back(clean: Lab, method: str) -> None:
    specs = [{"vip": "203.0.113.22", "port": 80, "dests": [
        {"addr": "198.51.100.11", "method": method, "weight": 5, "upper": 100, "lower": 10}]}]
    assert sync(clean, specs)["failures"] == []
    [dest] = observe(clean)[0]["dests"]
    assert (dest["method"], dest["weight"], dest["upper"], dest["lower"]) == (method, 5, 100, 10)
    flag = {"nat": "Masq", "dr": "Route", "tunnel": "Tunnel"}[method]
    assert flag in clean.vm.run("ipvsadm", "-Ln")
    # Changing the method is an in-place edit too.
    other = "dr" if method != "dr" else "nat"
    specs[0]["dests"][0]["method"] = other  # type: ignore[index]
    assert sync(clean, specs) == {"sent": 1, "failures": []}
    assert observe(clean)[0]["dests"][0]["method"] == other


def test_protocols_families_fwmark(clean: Lab) -> None:
    specs: list[dict[str, Any]] = [
        {"proto": "udp", "vip": "203.0.113.23", "port": 53, "one_packet": True,
         "dests": [{"addr": "198.51.100.11"}]},
        {"proto": "sctp", "vip": "203.0.113.23", "port": 3868,
         "dests": [{"addr": "198.51.100.12"}]},
        {"proto": "tcp", "vip": "2001:db8:ff::10", "port": 80, "persistence": 60,
         "netmask": 64, "dests": [{"addr": "2001:db8:2::11"}]},
        {"fwmark": 7, "sched": "rr", "dests": [{"addr": "198.51.100.13", "port": 0}]},
        {"fwmark": 8, "family": 6, "dests": [{"addr": "2001:db8:2::12", "port": 0}]},
    ]
    assert sync(clean, specs)["failures"] == []
    got = {s["key"]: s for s in observe(clean)}
    assert set(got) == {"udp:203.0.113.23:53", "sctp:203.0.113.23:3868",
                        "tcp:[2001:db8:ff::10]:80", "fwmark:7/ipv4", "fwmark:8/ipv6"}
    assert got["udp:203.0.113.23:53"]["one_packet"] is True
    v6 = got["tcp:[2001:db8:ff::10]:80"]
    assert (v6["persistence"], v6["netmask"]) == (60, 64)
    assert v6["dests"][0]["addr"] == "2001:db8:2::11"


def test_second_sync_changes_nothing(clean: Lab) -> None:
    specs = [{"vip": f"203.0.113.{30 + i}", "port": 80, "sched": "wrr", "persistence": 30,
              "dests": [{"addr": f"198.51.100.{11 + j}", "weight": j + 1, "method": "dr"}
                        for j in range(3)]} for i in range(5)]
    first = sync(clean, specs)
    assert first == {"sent": 20, "failures": []}
    before = clean.vm.run("ipvsadm", "-Sn")
    assert sync(clean, specs) == {"sent": 0, "failures": []}
    assert clean.vm.run("ipvsadm", "-Sn") == before


def test_removing_a_backend_and_a_service(clean: Lab) -> None:
    specs: list[dict[str, Any]] = [
        {"vip": "203.0.113.40", "dests": [{"addr": "198.51.100.11"}, {"addr": "198.51.100.12"}]},
        {"vip": "203.0.113.41", "dests": [{"addr": "198.51.100.11"}]},
    ]
    sync(clean, specs)
    specs[0]["dests"].pop()
    specs.pop()
    assert sync(clean, specs) == {"sent": 2, "failures": []}  # DelDest + DelService
    [svc] = observe(clean)
    assert [d["addr"] for d in svc["dests"]] == ["198.51.100.11"]


def test_foreign_services_are_left_alone(clean: Lab) -> None:
    # Outside the owned range (203.0.113.0/25): made by an operator with ipvsadm.
    clean.vm.sh("""
        ipvsadm -A -t 203.0.113.200:80 -s rr
        ipvsadm -a -t 203.0.113.200:80 -r 198.51.100.13:80 -m -w 7
        ipvsadm -A -f 500 -s wlc
    """)
    before = clean.vm.run("ipvsadm", "-Sn")
    sync(clean, [{"vip": "203.0.113.50", "dests": [{"addr": "198.51.100.11"}]}])
    sync(clean, [])  # our service goes away, the foreign ones stay
    assert clean.vm.run("ipvsadm", "-Sn") == before


def test_apply_is_idempotent_on_benign_errors(clean: Lab) -> None:
    """Re-applying the same ops (EEXIST, ENOENT) is success and converges."""
    result = clean.vm.py("""
from tests.vm.guest_helpers import forwarder, table
from dataplane.ipvs.plan import plan_ipvs, DelDest, DelService
from dataplane.ipvs.model import IpvsTable
want = table([{"vip": "203.0.113.60", "sched": "rr", "dests": [{"addr": "198.51.100.11"}]}])
ops = plan_ipvs(want, IpvsTable(), lambda k: True)
k = forwarder().kernel
first, again = k.apply(ops), k.apply(ops)
gone = [DelDest(d) for d in want.dests] + [DelService(s) for s in want.services]
deleted, deleted_again = k.apply(gone), k.apply(gone)
result = [len(r.failures) for r in (first, again, deleted, deleted_again)]
""")
    assert result == [0, 0, 0, 0]
    assert observe(clean) == []


def test_errors_are_reported_not_raised(clean: Lab) -> None:
    result = sync(clean, [{"vip": "203.0.113.61", "sched": "nosuch"}])
    assert len(result["failures"]) == 1
    assert observe(clean) == []


def test_stats_are_read(clean: Lab) -> None:
    sync(clean, [{"vip": "203.0.113.62", "dests": [{"addr": "198.51.100.11"}]}])
    result = clean.vm.py("from tests.vm.guest_helpers import stats\nresult = stats()")
    assert result["services"] == {"tcp:203.0.113.62:80": 0}
    assert list(result["dests"].values()) == [[0, 0, 0]]
