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
