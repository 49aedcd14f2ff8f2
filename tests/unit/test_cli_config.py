"""`speaker config check|show` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").rglob("*.yaml"))


def speaker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "speaker", *args], capture_output=True,
                          text=True, check=False, cwd=REPO)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_pass_check(path: Path) -> None:
    result = speaker("config", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_examples_exist() -> None:
    names = {str(p.relative_to(REPO / "examples")) for p in EXAMPLES}
    assert {"single-bgp.yaml", "l2-pair/lb1.yaml", "l2-pair/lb2.yaml",
            "bgp-active-active/lb1.yaml", "bgp-active-active/lb2.yaml"} <= names


def test_invalid_config_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  name: 'lb 1'\n  router_id: 192.0.2.1\n  interfaces: [{name: eth0}]\n"
                   "services:\n  - name: web\n    vip: 203.0.113.10\n    ports: [80]\n"
                   "    scheduler: random\n    backends: [{address: 198.51.100.1}]\n")
    result = speaker("config", "check", str(bad))
    assert result.returncode == 1
    assert "node.name (line 2)" in result.stderr
    assert "services[0].scheduler (line 9)" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    ("node: [unclosed\n", "not valid YAML at line"),
    ("- just\n- a list\n", "top level must be a mapping"),
    (b"\xff\xfe\x00garbage", "cannot read"),
])
def test_unreadable_config_exits_2(tmp_path: Path, content: str | bytes | None,
                                   message: str) -> None:
    path = tmp_path / "cfg.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = speaker("config", "check", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_show_fills_in_defaults() -> None:
    result = speaker("config", "show", "--json", str(REPO / "examples/single-bgp.yaml"))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    web = doc["services"][0]
    assert web["persistence"]["timeout"] == 10800.0
    assert web["drain_time"] == 30.0
    assert doc["bgp"]["peers"][0]["families"] == ["ipv4-unicast", "ipv6-unicast"]
    assert doc["api"]["socket"] == "/run/edge-speaker/api.sock"
    yaml_out = speaker("config", "show", str(REPO / "examples/single-bgp.yaml"))
    assert yaml_out.returncode == 0
    assert "drain_time: 30.0" in yaml_out.stdout
