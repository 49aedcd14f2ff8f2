"""The config medium: network.yaml rendering, checks naming the file and field, last good."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from speaker.appliance.medium import activate_network, apply_medium, check_files, read_dir
from speaker.appliance.network import parse_network, render
from speaker.config.load import ConfigError

SPEAKER = {
    "node": {"name": "lb1", "router_id": "192.0.2.2", "interfaces": [{"name": "front"}]},
    "services": [{"name": "web", "vip": "203.0.113.10", "ports": [80], "announce": "l2",
                  "backends": [{"address": "198.51.100.11"}]}],
}
NETWORK = {
    "hostname": "lb1",
    "interfaces": [
        {"name": "front", "mac": "52:54:00:E1:00:01", "addresses": ["192.0.2.2/24"],
         "gateway": "192.0.2.1", "mtu": 9000},
        {"name": "eth2", "mac": "52:54:00:e1:00:03"},
        {"name": "eth3", "mac": "52:54:00:e1:00:04"},
    ],
    "bonds": [{"name": "bond0", "members": ["eth2", "eth3"],
               "addresses": ["198.51.100.1/25", "2001:db8:2::1/64"]}],
    "vlans": [{"name": "front.100", "parent": "front", "id": 100,
               "addresses": ["203.0.113.2/28"], "required_for_online": False}],
    "dns": ["192.0.2.53"],
}


def test_render_links_bonds_and_vlans() -> None:
    files = render(parse_network(yaml.safe_dump(NETWORK)))
    assert sorted(files) == [
        "10-es-eth2.link", "10-es-eth3.link", "10-es-front.link", "20-es-bond0.netdev",
        "20-es-front.100.netdev", "30-es-bond0.network", "30-es-eth2.network",
        "30-es-eth3.network", "30-es-front.100.network", "30-es-front.network"]
    assert "MACAddress=52:54:00:e1:00:01\n\n[Link]\nName=front" in files["10-es-front.link"]
    assert "MACAddress=52:54:00:e1:00:01" in files["30-es-front.network"]
    front = files["30-es-front.network"]
    for line in ("Address=192.0.2.2/24", "Gateway=192.0.2.1", "VLAN=front.100", "MTUBytes=9000",
                 "DNS=192.0.2.53"):
        assert line in front.splitlines()
    assert "Bond=bond0" in files["30-es-eth2.network"].splitlines()
    assert not [x for x in files["30-es-eth2.network"].splitlines() if x.startswith("Address=")]
    assert "Mode=802.3ad" in files["20-es-bond0.netdev"]
    assert "Id=100" in files["20-es-front.100.netdev"]
    assert "RequiredForOnline=no" in files["30-es-front.100.network"]
    assert "Address=2001:db8:2::1/64" in files["30-es-bond0.network"]


@pytest.mark.parametrize(("change", "expect"), [
    ({"bonds": [{"name": "bond0", "members": ["eth9"]}]}, "bond member 'eth9'"),
    ({"vlans": [{"name": "v1", "parent": "nope", "id": 5}]}, "parent 'nope'"),
    ({"vlans": [{"name": "v1", "parent": "front", "id": 5000}]}, "vlans[0].id"),
    ({"interfaces": [{"name": "front", "mac": "zz"}]}, "interfaces[0].mac"),
    ({"interfaces": [{"name": "a", "mac": "52:54:00:00:00:01", "gateway": "192.0.2.1"},
                     {"name": "b", "mac": "52:54:00:00:00:02", "gateway": "192.0.2.9"}],
      "bonds": [], "vlans": []},
     "at most one gateway"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_network_yaml_names_the_problem(change: dict[str, object], expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_network(yaml.safe_dump({**NETWORK, **change}))
    assert any(expect in str(i) for i in err.value.issues), err.value.issues


def _medium(tmp_path: Path, speaker: object, network: object = NETWORK) -> dict[str, bytes]:
    src = tmp_path / "medium"
    src.mkdir(exist_ok=True)
    (src / "SPEAKER.YAML").write_text(yaml.safe_dump(speaker))  # FAT names: any case
    (src / "network.yaml").write_text(yaml.safe_dump(network))
    (src / "authorized_keys").write_text("ssh-ed25519 AAAA test\n")
    (src / "notes.txt").write_text("ignored")
    return read_dir(src)


def test_good_medium_becomes_the_last_good_config(tmp_path: Path) -> None:
    files = _medium(tmp_path, SPEAKER)
    assert sorted(files) == ["authorized_keys", "network.yaml", "speaker.yaml"]
    report = apply_medium(tmp_path / "state", files)
    assert report.applied
    assert not report.errors
    assert (tmp_path / "state" / "authorized_keys").stat().st_mode & 0o777 == 0o600
    written = activate_network(tmp_path / "state", tmp_path / "run")
    assert "30-es-front.network" in written
    assert (tmp_path / "run" / "10-es-front.link").exists()


def test_bad_medium_is_reported_and_the_last_good_kept(tmp_path: Path) -> None:
    state = tmp_path / "state"
    apply_medium(state, _medium(tmp_path, SPEAKER))
    good = (state / "speaker.yaml").read_text()
    bad = {**SPEAKER, "services": [{**SPEAKER["services"][0], "scheduler": "random"}]}  # type: ignore[dict-item]
    report = apply_medium(state, _medium(tmp_path, bad, {**NETWORK, "dns": ["x"]}))
    assert not report.applied
    assert any(e.startswith("speaker.yaml: services[0].scheduler") for e in report.errors)
    assert any(e.startswith("network.yaml: dns[0]") for e in report.errors)
    assert "REJECTED" in report.notes[0]
    assert (state / "speaker.yaml").read_text() == good


def test_missing_medium_and_missing_speaker_yaml(tmp_path: Path) -> None:
    assert not apply_medium(tmp_path, None).found
    assert check_files({}) == [
        "speaker.yaml: missing (the medium must carry the speaker config)"]
    assert check_files({"speaker.yaml": b"\xff"}) == ["speaker.yaml: not UTF-8 text"]


def test_pending_renames_lists_nics_not_yet_renamed(tmp_path: Path) -> None:
    from speaker.appliance.medium import pending_renames

    state = tmp_path / "state"
    apply_medium(state, _medium(tmp_path, SPEAKER))
    sys_net = tmp_path / "net"
    for name, mac in (("enp0s2", "52:54:00:e1:00:01"), ("eth2", "52:54:00:e1:00:03"),
                      ("lo", "00:00:00:00:00:00")):
        (sys_net / name).mkdir(parents=True)
        (sys_net / name / "address").write_text(mac + "\n")
    assert pending_renames(state, sys_net) == {"enp0s2": "front"}
