"""The sysctl guard: one table, applied when managed, reported always, exported as metrics."""

from __future__ import annotations

from pathlib import Path

from speaker.config import AppConfig
from speaker.metrics import REGISTRY
from speaker.sysctls import SysctlGuard

CFG = {"node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "eth0"}]},
       "services": [{"name": "arp", "vip": "192.0.2.77", "ports": [80], "announce": "l2",
                     "backends": [{"address": "198.51.100.11", "port": 8080}]}],
       "dataplane": {"ipvs": False}}


def proc(root: Path) -> Path:
    for key, value in {"ipv4/conf/all/arp_ignore": 0, "ipv4/conf/all/arp_announce": 0,
                       "ipv4/conf/eth0/arp_ignore": 0, "ipv4/conf/eth0/arp_announce": 0}.items():
        path = root / "net" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return root


def mismatch(name: str) -> float | None:
    return REGISTRY.get_sample_value("speaker_sysctl_mismatch", {"name": name})


def test_reported_when_not_managed_then_fixed_when_managed(tmp_path: Path) -> None:
    root = proc(tmp_path)
    config = AppConfig.model_validate({**CFG, "dataplane": {"ipvs": False,
                                                            "manage_sysctls": False}})
    wakes: list[str] = []
    guard = SysctlGuard(config, wakes.append, root=root, sysfs=tmp_path / "sys")
    left = guard.check_once()
    assert sorted(m.sysctl.display_name() for m in left) == [
        "net.ipv4.conf.eth0.arp_announce", "net.ipv4.conf.eth0.arp_ignore"]
    assert (root / "net/ipv4/conf/eth0/arp_ignore").read_text() == "0\n"  # not written
    assert mismatch("net.ipv4.conf.eth0.arp_ignore") == 1.0
    assert REGISTRY.get_sample_value("speaker_sysctl_mismatches") == 2.0
    assert guard.status()["mismatches"][0]["want"] in ("1", "2")
    assert wakes == ["sysctl_changed"]
    # a reload turns management on: written, metric series gone
    guard.reconfigure(AppConfig.model_validate(CFG))
    assert guard.mismatches == ()
    assert (root / "net/ipv4/conf/eth0/arp_ignore").read_text().strip() == "1"
    assert mismatch("net.ipv4.conf.eth0.arp_ignore") is None
    assert REGISTRY.get_sample_value("speaker_sysctl_mismatches") == 0.0
    # something resets it later: the next check (every resync) puts it back
    (root / "net/ipv4/conf/eth0/arp_ignore").write_text("0\n")
    assert guard.check_once() == ()
    assert (root / "net/ipv4/conf/eth0/arp_ignore").read_text().strip() == "1"


def test_no_l2_no_ipvs_needs_nothing(tmp_path: Path) -> None:
    config = AppConfig.model_validate({**CFG, "services": []})
    guard = SysctlGuard(config, lambda _e: None, root=tmp_path)
    assert guard.check_once() == ()
