"""The sysctl table: required per mode, mismatches reported, written only when allowed."""

from __future__ import annotations

from pathlib import Path

from dataplane import sysctl


def fake_proc(tmp_path: Path, values: dict[str, str]) -> Path:
    for name, value in values.items():
        path = tmp_path.joinpath(*name.split("."))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return tmp_path


def test_every_entry_has_a_reason_and_a_mode() -> None:
    for entry in sysctl.SYSCTLS:
        assert entry.reason
        assert entry.modes
    names = [s.name for s in sysctl.required(["nat"])]
    assert "net.ipv4.ip_forward" in names
    assert "net.ipv4.conf.all.arp_ignore" not in names
    assert "net.ipv4.conf.all.arp_ignore" in [s.name for s in sysctl.required(["dr"])]


def test_check_and_fix(tmp_path: Path) -> None:
    values = {s.name: "0" for s in sysctl.SYSCTLS if s.name != "net.ipv4.vs.conntrack"}
    root = fake_proc(tmp_path, values)
    mismatches = sysctl.check(["nat"], root)
    by_name = {m.sysctl.name: m for m in mismatches}
    assert by_name["net.ipv4.ip_forward"].actual == "0"
    assert by_name["net.ipv4.vs.conntrack"].actual is None  # missing key: reported
    assert "want '1'" in str(by_name["net.ipv4.ip_forward"])
    # Not allowed: nothing is written, everything is still reported.
    assert sysctl.fix(mismatches, allowed=False, root=root) == mismatches
    assert (root / "net/ipv4/ip_forward").read_text() == "0\n"
    # Allowed: written, except the key that does not exist (never created).
    left = sysctl.fix(mismatches, allowed=True, root=root)
    assert [m.sysctl.name for m in left] == ["net.ipv4.vs.conntrack"]
    assert (root / "net/ipv4/ip_forward").read_text() == "1\n"
    assert sysctl.check(["nat"], root) == left


# --- per-interface ARP/NDP entries (mode l2), moved here from speaker/l2/sysctl.py ---

L2_BASE = {"net.ipv4.conf.all.arp_ignore": "0", "net.ipv4.conf.all.arp_announce": "0",
           "net.ipv4.conf.eth0.arp_ignore": "0", "net.ipv4.conf.eth0.arp_announce": "0",
           "net.ipv6.conf.all.proxy_ndp": "0", "net.ipv6.conf.eth0.proxy_ndp": "0"}


def test_l2_entries_are_per_interface_and_set_on_the_interface(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, L2_BASE)
    found = sysctl.check(["l2"], root, ["eth0"])
    assert sorted(m.sysctl.display_name() for m in found) == [
        "net.ipv4.conf.eth0.arp_announce", "net.ipv4.conf.eth0.arp_ignore"]
    assert sysctl.fix(found, allowed=True, root=root) == ()
    assert (root / "net/ipv4/conf/eth0/arp_ignore").read_text().strip() == "1"
    assert (root / "net/ipv4/conf/eth0/arp_announce").read_text().strip() == "2"
    assert (root / "net/ipv4/conf/all/arp_ignore").read_text().strip() == "0"  # not global
    assert sysctl.check(["l2"], root, ["eth0"]) == ()


def test_l2_stricter_and_all_scope_count(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, {**L2_BASE, "net.ipv4.conf.eth0.arp_ignore": "2",
                                "net.ipv4.conf.all.arp_announce": "2"})
    assert sysctl.check(["l2"], root, ["eth0"]) == ()


def test_l2_proxy_ndp_forced_by_all_is_reported(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, {**L2_BASE, "net.ipv4.conf.eth0.arp_ignore": "1",
                                "net.ipv4.conf.eth0.arp_announce": "2",
                                "net.ipv6.conf.all.proxy_ndp": "1"})
    left = sysctl.fix(sysctl.check(["l2"], root, ["eth0"]), allowed=True, root=root)
    assert [(m.sysctl.display_name(), m.actual) for m in left] == [
        ("net.ipv6.conf.eth0.proxy_ndp", "1")]


def test_l2_no_ipv6_and_vlan_names(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, {"net.ipv4.conf.all.arp_ignore": "1",
                                "net.ipv4.conf.all.arp_announce": "2",
                                "net.ipv4.conf.eth0/100.arp_ignore": "0",
                                "net.ipv4.conf.eth0/100.arp_announce": "0"})
    assert sysctl.check(["l2"], root, ["eth0.100"]) == ()  # no IPv6: not a mismatch


def test_vlan_parents_are_included(tmp_path: Path) -> None:
    (tmp_path / "eth0.100" / "lower_eth0").mkdir(parents=True)
    (tmp_path / "eth0").mkdir()
    assert sysctl.with_lower_devices(["eth0.100", "eth1"], tmp_path) == [
        "eth0.100", "eth1", "eth0"]
