"""No file name or config string can put a line into router output (every vendor), and
the written file is for its owner only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from speaker.config import ConfigError, parse_text
from speaker.routercfg.render import VENDORS
from tests.routercfg.cases import REPO, invoke

KNOBS = (REPO / "tests/routercfg/configs/knobs-a.yaml").read_text()
PAYLOAD = "neighbor 6.6.6.6 remote-as 666"
BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
          "\u2029"]
"""Every character str.splitlines() (or a router's parser) may take for a line break."""
HOSTILE_NAMES = [f"a{b}{PAYLOAD}{b}.yaml" for b in BREAKS] + [
    "a\u202e.yaml", "a\x1b[2J.yaml", "a * } ; # ! .yaml"]


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def render(path: Path, vendor: str, monkeypatch: pytest.MonkeyPatch) -> str:
    result = invoke(["-c", str(path), "--vendor", vendor], monkeypatch)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("vendor", VENDORS)
def test_hostile_file_names_stay_inside_their_comment(vendor: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(KNOBS)
    reference = lines_of(render(plain, vendor, monkeypatch))
    for name in HOSTILE_NAMES:
        path = tmp_path / name
        path.write_text(KNOBS)
        text = render(path, vendor, monkeypatch)
        assert text.splitlines() == text.split("\n")[:-1], f"a line break hides in {name!r}"
        assert len(lines_of(text)) == len(reference), name
        assert not any(line.lstrip().startswith("neighbor 6.6.6.6") for line in lines_of(text))
        assert all(c.isprintable() for line in lines_of(text) for c in line), name
        path.unlink()


@pytest.mark.parametrize("vendor", VENDORS)
def test_hostile_description_is_flattened(vendor: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "desc.yaml"
    path.write_text(KNOBS.replace('description: "edge a; \\"rack 4\\" {east}"',
                                  'description: "x } ; exit \\u00a0 \'q\' <b> `id` $(id) #!"'))
    text = render(path, vendor, monkeypatch)
    assert all(c.isprintable() for line in lines_of(text) for c in line)
    assert "$(id)" not in text
    assert "`id`" not in text
    assert "\u00a0" not in text


@pytest.mark.parametrize("value", [f"x\n{PAYLOAD}", f"x\r{PAYLOAD}", f"x\x85{PAYLOAD}",
                                   f"x\u2028{PAYLOAD}", "x\u202ey", "x\x7fy"])
@pytest.mark.parametrize("field", ["description", "password", "name"])
def test_config_strings_with_line_breaks_never_load(field: str, value: str) -> None:
    if field == "name":
        text = KNOBS.replace("- name: border\n", f"- name: {json.dumps(value)}\n", 1)
    else:
        text = KNOBS.replace("      local_address: 198.51.100.21\n", "      local_address: "
                             f"198.51.100.21\n      {field}: {json.dumps(value)}\n", 1)
        text = text.replace('      description: "edge a; \\"rack 4\\" {east}"\n', "", 1)
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    assert f"bgp.peers[0].{field}" in [i.path for i in info.value.issues]


def test_output_file_is_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "frr.conf"
    out.write_text("old")
    out.chmod(0o644)
    conf = tmp_path / "lb.yaml"
    conf.write_text((REPO / "tests/routercfg/configs/lab-lb1.yaml").read_text())
    result = invoke(["-c", str(conf), "--vendor", "frr", "-o", str(out)], monkeypatch)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "password" in out.read_text()
    fresh = tmp_path / "new.conf"
    result = invoke(["-c", str(conf), "--vendor", "bird", "-o", str(fresh)], monkeypatch)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
