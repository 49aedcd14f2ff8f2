"""`speaker config check A.yaml B.yaml`: a pair or fleet checked together."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from speaker.cli.main import main

REPO = Path(__file__).resolve().parents[2]
PAIRS = {"l2": ["examples/l2-pair/lb1.yaml", "examples/l2-pair/lb2.yaml"],
         "bgp": ["examples/bgp-active-active/lb1.yaml", "examples/bgp-active-active/lb2.yaml"]}


def check(*files: Path | str) -> Result:
    return CliRunner().invoke(main, ["config", "check", *map(str, files)])


def edited(tmp_path: Path, source: str, *edits: tuple[str, str]) -> Path:
    text = (REPO / source).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / Path(source).name.replace(".yaml", "-edited.yaml")
    path.write_text(text)
    return path


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_example_pairs_agree(pair: str) -> None:
    result = check(*(REPO / f for f in PAIRS[pair]))
    assert result.exit_code == 0, result.output
    assert "2 appliances agree" in result.stdout


def test_same_router_id_and_name(tmp_path: Path) -> None:
    lb1, lb2 = (REPO / f for f in PAIRS["l2"])
    twin = edited(tmp_path, PAIRS["l2"][1], ("name: lb2", "name: lb1"),
                  ("router_id: 192.0.2.22", "router_id: 192.0.2.21"))
    result = check(lb1, twin)
    assert result.exit_code == 1
    assert f"{twin}: node.name: 'lb1' is also node.name in {lb1}" in result.stderr
    assert f"{twin}: node.router_id: 192.0.2.21 is also" in result.stderr
    assert lb2.exists()


def test_equal_vrrp_priorities(tmp_path: Path) -> None:
    lb2 = edited(tmp_path, PAIRS["l2"][1], ("priority: 100", "priority: 150"))
    result = check(REPO / PAIRS["l2"][0], lb2)
    assert result.exit_code == 1
    assert f"{lb2}: election.groups[0].priority: vrid 51 has priority 150" in result.stderr


def test_different_vips_in_a_vrrp_group(tmp_path: Path) -> None:
    lb2 = edited(tmp_path, PAIRS["l2"][1], ("vip: 2001:db8::100", "vip: 2001:db8::101"))
    result = check(REPO / PAIRS["l2"][0], lb2)
    assert result.exit_code == 1
    assert (f"{lb2}: election.groups[0]: vrid 51 carries other VIPs than in "
            f"{REPO / PAIRS['l2'][0]} (missing here: 2001:db8::100; only here: "
            "2001:db8::101)") in result.stderr


def test_group_name_and_interval_follow_the_vrid(tmp_path: Path) -> None:
    lb2 = edited(tmp_path, PAIRS["l2"][1], ("preset: fast", "preset: default"),
                 ("- name: front", "- name: back"), ("group: front", "group: back"),
                 ("group: front", "group: back"))
    result = check(REPO / PAIRS["l2"][0], lb2)
    assert result.exit_code == 1
    assert f"{lb2}: election.groups[0].name: vrid 51 is group 'front'" in result.stderr
    assert f"{lb2}: election.groups[0].advert_interval: vrid 51 advertises every 1 s" \
        in result.stderr


def test_one_asn_per_router(tmp_path: Path) -> None:
    lb2 = edited(tmp_path, PAIRS["bgp"][1], ("asn: 65000", "asn: 65001"))
    result = check(REPO / PAIRS["bgp"][0], lb2)
    assert result.exit_code == 1, result.output
    assert f"{lb2}: bgp.peers[0].asn: router 198.51.100.254 is AS65001 here" in result.stderr


def test_shared_local_address(tmp_path: Path) -> None:
    lb2 = edited(tmp_path, PAIRS["bgp"][1], ("local_address: 198.51.100.2",
                                             "local_address: 198.51.100.1"))
    result = check(REPO / PAIRS["bgp"][0], lb2)
    assert result.exit_code == 1
    assert f"{lb2}: bgp.peers[0].local_address: 198.51.100.1 towards" in result.stderr


def test_a_bad_file_is_reported_and_the_rest_still_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: {name: 'x y'}\n")
    result = check(bad, REPO / PAIRS["l2"][0])
    assert result.exit_code == 1
    assert "node.name" in result.stderr
    assert "lb1.yaml: ok" in result.stdout
    result = check(tmp_path / "missing.yaml", REPO / PAIRS["l2"][0])
    assert result.exit_code == 2
