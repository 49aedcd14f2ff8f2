"""Secrets: `config show` redacts them, a password_file keeps them out of the YAML."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from speaker.cli.main import main
from speaker.config import ConfigError, load_config, parse_text

CONFIG = """node:
  name: lb1
  router_id: 192.0.2.10
  interfaces: [{name: eth0}]
bgp:
  local_asn: 65010
  peers:
    - name: r1
      address: 192.0.2.1
      asn: 65000
      %s
services:
  - name: web
    vip: 203.0.113.10
    ports: [80]
    backends: [{address: 198.51.100.11}]
"""


def write(tmp_path: Path, peer_line: str) -> Path:
    path = tmp_path / "speaker.yaml"
    path.write_text(CONFIG % peer_line)
    return path


def key_file(tmp_path: Path, content: str, mode: int = 0o600) -> Path:
    path = tmp_path / "r1.key"
    path.write_text(content)
    path.chmod(mode)
    return path


def show(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["config", "show", *args])
    return result.exit_code, result.stdout


def test_show_redacts_passwords_unless_asked(tmp_path: Path) -> None:
    path = write(tmp_path, "password: s3cret-Key")
    code, out = show("--json", str(path))
    assert code == 0
    assert "s3cret" not in out
    assert json.loads(out)["bgp"]["peers"][0]["password"] == "<redacted>"
    code, out = show(str(path))
    assert code == 0
    assert "s3cret" not in out
    assert "<redacted>" in out
    code, out = show("--json", "--show-secrets", str(path))
    assert json.loads(out)["bgp"]["peers"][0]["password"] == "s3cret-Key"


def test_show_leaves_absent_passwords_alone(tmp_path: Path) -> None:
    code, out = show("--json", str(write(tmp_path, "hold_time: 9")))
    assert code == 0
    assert json.loads(out)["bgp"]["peers"][0]["password"] is None


def test_password_file_is_read_at_load(tmp_path: Path) -> None:
    key = key_file(tmp_path, "from-the-file\n")
    cfg = load_config(write(tmp_path, f"password_file: {key}"))
    assert cfg.bgp is not None
    assert cfg.bgp.peers[0].password == "from-the-file"
    assert cfg.bgp.peers[0].password_file == key


def test_reload_rereads_the_password_file(tmp_path: Path) -> None:
    key = key_file(tmp_path, "first")
    path = write(tmp_path, f"password_file: {key}")
    first = load_config(path)
    key.write_text("second")
    second = load_config(path)  # what the daemon's reload calls
    assert first.bgp is not None
    assert second.bgp is not None
    assert (first.bgp.peers[0].password, second.bgp.peers[0].password) == ("first", "second")


def test_show_redacts_a_key_from_a_file(tmp_path: Path) -> None:
    key = key_file(tmp_path, "from-the-file")
    code, out = show("--json", str(write(tmp_path, f"password_file: {key}")))
    assert code == 0
    assert "from-the-file" not in out


@pytest.mark.parametrize(("setup", "words"), [
    ("relative", "absolute path"),
    ("missing", "cannot read"),
    ("directory", "not a regular file"),
    ("fifo", "not a regular file"),
    ("world-readable", "readable by others"),
    ("too-long", "82 bytes"),
    ("two-lines", "more than one line"),
    ("bad-char", "must not contain"),
    ("both", "not both"),
])
def test_bad_password_file_names_the_field(tmp_path: Path, setup: str, words: str) -> None:
    target: str = str(tmp_path / "r1.key")
    extra = ""
    if setup == "relative":
        target = "r1.key"
    elif setup == "directory":
        target = str(tmp_path)
    elif setup == "fifo":
        os.mkfifo(target)
    elif setup == "world-readable":
        key_file(tmp_path, "k", 0o644)
    elif setup == "too-long":
        key_file(tmp_path, "é" * 41)
    elif setup == "two-lines":
        key_file(tmp_path, "a\nb\n")
    elif setup == "bad-char":
        key_file(tmp_path, "a b")
    elif setup == "both":
        key_file(tmp_path, "k")
        extra = "\n      password: k"
    with pytest.raises(ConfigError) as info:
        parse_text(CONFIG % f"password_file: {target}{extra}")
    found = {i.path: i.message for i in info.value.issues}
    assert words in found.get("bgp.peers[0].password_file", ""), found


def test_tsig_secret_file_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "tsig.key"
    os.mkfifo(fifo)
    text = (CONFIG % "hold_time: 9") + (
        "dns:\n  servers:\n    - address: 192.0.2.53\n      zone: example.test\n"
        f"      tsig: {{name: es-key, secret_file: {fifo}}}\n")
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    assert any("not a regular file" in i.message for i in info.value.issues)


def test_show_redacts_tsig_secrets(tmp_path: Path) -> None:
    path = tmp_path / "speaker.yaml"
    path.write_text((CONFIG % "hold_time: 9") + (
        "dns:\n  servers:\n    - address: 192.0.2.53\n      zone: example.test\n"
        "      tsig: {name: es-key, secret: c2VjcmV0LXNlY3JldC1zZWNyZXQ=}\n"))
    code, out = show("--json", str(path))
    assert code == 0, out
    assert "c2VjcmV0" not in out
