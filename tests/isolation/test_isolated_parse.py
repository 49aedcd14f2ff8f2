"""Reload parsing in a limited child: hostile files are rejected with a reason, never a crash."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import yaml

from speaker.config import ConfigError, ConfigUnreadableError, load_config
from speaker.config.isolated import ParseLimits, load_isolated

GOOD = {
    "node": {"name": "lb1", "router_id": "192.0.2.10", "interfaces": [{"name": "lo"}]},
    "bgp": {"local_asn": 65010, "peers": [{"name": "r1", "address": "192.0.2.1", "asn": 65000}]},
    "services": [{"name": "web", "vip": "203.0.113.10", "ports": [80],
                  "backends": [{"address": "198.51.100.11", "port": 8080}],
                  "health": {"type": "none"}}],
}


def load(path: Path, limits: ParseLimits | None = None) -> object:
    return asyncio.run(load_isolated(path, limits))


def test_valid_config_comes_back_equal_to_an_in_process_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert load(path) == load_config(path)


def test_invalid_config_lists_issues_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    bad = {**GOOD, "services": [{**GOOD["services"][0], "scheduler": "random"}]}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load(path)
    assert [i.path for i in err.value.issues] == ["services[0].scheduler"]
    assert err.value.issues[0].line is not None


def test_infinite_hold_time_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "inf.yaml"
    text = yaml.safe_dump(GOOD).replace("asn: 65000", "asn: 65000\n    hold_time: .inf")
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "bgp.peers[0].hold_time" in [i.path for i in err.value.issues]


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    start = time.monotonic()
    with pytest.raises(ConfigUnreadableError, match="not a regular file"):
        load(path)
    assert time.monotonic() - start < 5  # generous: the point is "does not hang"


def test_oversize_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * 4096 + "\n")
    with pytest.raises(ConfigUnreadableError, match="larger than"):
        load(path, ParseLimits(max_bytes=1024))


def test_deeply_nested_yaml_is_rejected_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("services: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises((ConfigUnreadableError, ConfigError)):
        load(path)


def test_parser_killed_after_its_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigUnreadableError, match="longer than"):
        load(path, ParseLimits(timeout=0.05))


def test_parser_over_its_memory_limit_is_a_rejection(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigUnreadableError, match="rejected"):
        load(path, ParseLimits(memory_bytes=32 << 20))
