"""Kernel knobs for VIPs on lo, against a fake /proc/sys/net tree."""

from __future__ import annotations

from pathlib import Path

from speaker.l2 import sysctl


def tree(root: Path, values: dict[str, int]) -> Path:
    for key, value in values.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def base(root: Path, **overrides: int) -> Path:
    values = {"ipv4/conf/all/arp_ignore": 0, "ipv4/conf/all/arp_announce": 0,
              "ipv4/conf/eth0/arp_ignore": 0, "ipv4/conf/eth0/arp_announce": 0,
              "ipv6/conf/all/proxy_ndp": 0, "ipv6/conf/eth0/proxy_ndp": 0}
    values.update({k.replace("__", "/"): v for k, v in overrides.items()})
    return tree(root, values)


def test_apply_sets_the_interface_and_verifies(tmp_path: Path) -> None:
    root = base(tmp_path)
    assert sysctl.verify(["eth0"], root) != []
    assert sysctl.apply(["eth0"], root) == []
    assert (root / "ipv4/conf/eth0/arp_ignore").read_text().strip() == "1"
    assert (root / "ipv4/conf/eth0/arp_announce").read_text().strip() == "2"


def test_stricter_values_are_kept(tmp_path: Path) -> None:
    root = base(tmp_path)
    (root / "ipv4/conf/eth0/arp_ignore").write_text("2\n")
    assert sysctl.apply(["eth0"], root) == []
    assert (root / "ipv4/conf/eth0/arp_ignore").read_text().strip() == "2"


def test_all_counts_for_the_effective_value(tmp_path: Path) -> None:
    root = base(tmp_path)
    (root / "ipv4/conf/all/arp_ignore").write_text("1\n")
    (root / "ipv4/conf/all/arp_announce").write_text("2\n")
    assert sysctl.verify(["eth0"], root) == []


def test_proxy_ndp_forced_on_by_all_is_reported(tmp_path: Path) -> None:
    root = base(tmp_path)
    (root / "ipv6/conf/all/proxy_ndp").write_text("1\n")
    findings = sysctl.apply(["eth0"], root)
    assert [(f.interface, f.knob, f.want, f.have) for f in findings] == [
        ("eth0", "proxy_ndp", 0, 1)]


def test_no_ipv6_is_not_a_finding(tmp_path: Path) -> None:
    root = tree(tmp_path, {"ipv4/conf/all/arp_ignore": 1, "ipv4/conf/all/arp_announce": 2,
                           "ipv4/conf/eth0/arp_ignore": 0, "ipv4/conf/eth0/arp_announce": 0})
    assert sysctl.verify(["eth0"], root) == []


def test_vlan_parents_are_included(tmp_path: Path) -> None:
    (tmp_path / "eth0.100" / "lower_eth0").mkdir(parents=True)
    (tmp_path / "eth0").mkdir()
    assert sysctl.with_lower_devices(["eth0.100", "eth1"], tmp_path) == [
        "eth0.100", "eth1", "eth0"]
