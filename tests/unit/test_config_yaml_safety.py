"""Hostile or surprising YAML: a clear error naming the place, exit 2, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from speaker.config import ConfigError, ConfigUnreadableError, load_config, parse_text
from speaker.config.yamlsafe import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_NODES

REPO = Path(__file__).resolve().parents[2]
GOOD = (REPO / "examples/single-bgp.yaml").read_text()
MINIMAL = ("node:\n  name: lb1\n  router_id: 192.0.2.10\n  interfaces: [{name: eth0}]\n"
           "services:\n  - name: web\n    vip: 203.0.113.10\n    ports: [80]\n"
           "    announce: l2\n    backends: [{address: 198.51.100.11}]\n")


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "speaker", "config", "check", *args],
                          capture_output=True, text=True, check=False, cwd=REPO, timeout=60)


def test_duplicate_top_level_key_is_an_error_with_path_and_line() -> None:
    text = MINIMAL + "services:\n  - name: other\n    vip: 203.0.113.11\n    ports: [80]\n" \
                     "    backends: [{address: 198.51.100.12}]\n"
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    (issue,) = info.value.issues
    assert issue.path == "services"
    assert issue.line == 11
    assert "twice" in issue.message
    assert "line 5" in issue.message


def test_duplicate_key_deep_inside_is_found() -> None:
    text = MINIMAL.replace("    ports: [80]\n", "    ports: [80]\n    ports: [443]\n")
    text = text.replace("{address: 198.51.100.11}", "{address: 198.51.100.11, port: 1, port: 2}")
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    assert [i.path for i in info.value.issues] == ["services[0].ports",
                                                   "services[0].backends[0].port"]


def test_merge_keys_are_not_duplicates() -> None:
    text = MINIMAL.replace("    backends: [{address: 198.51.100.11}]\n",
                           "    backends:\n      - &b {address: 198.51.100.11, weight: 2}\n"
                           "      - {<<: *b, address: 198.51.100.12}\n")
    cfg = parse_text(text)
    assert [b.weight for b in cfg.services[0].backends] == [2, 2]


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['true']",
                                 "!!python/name:os.system", "!!binary aGVsbG8=", "!foo bar",
                                 "!!str web"])
def test_yaml_tags_are_refused_with_their_path(tag: str) -> None:
    with pytest.raises(ConfigUnreadableError) as info:
        parse_text(MINIMAL.replace("name: web", f"name: {tag}"))
    assert "services[0].name (line 6" in str(info.value)
    assert "tag" in str(info.value)


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = MINIMAL + "\n".join(lines) + "\n"
    with pytest.raises(ConfigUnreadableError) as info:
        parse_text(text)
    assert f"more than {MAX_NODES} values" in str(info.value)


def test_few_aliases_are_fine() -> None:
    text = MINIMAL.replace("[{address: 198.51.100.11}]", "[&one {address: 198.51.100.11}]")
    assert parse_text(text).services[0].backends[0].port is None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 50_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    text = MINIMAL + "extra: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigUnreadableError) as info:
        parse_text(text)
    assert f"nested deeper than the limit of {MAX_DEPTH}" in str(info.value)
    assert "extra" in str(info.value)


def test_deep_nesting_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("node: " + "[" * 50_000 + "]" * 50_000 + "\n")
    result = check(str(path))
    assert result.returncode == 2, result.stderr
    assert "nested deeper" in result.stderr
    assert "Traceback" not in result.stderr


def test_huge_integer_is_a_clear_error() -> None:
    with pytest.raises(ConfigUnreadableError) as info:
        parse_text(MINIMAL.replace("ports: [80]", "ports: [" + "9" * 5000 + "]"))
    assert "too large" in str(info.value)
    with pytest.raises(ConfigError) as err:
        parse_text(MINIMAL.replace("ports: [80]", "ports: [" + "9" * 30 + "]"))
    assert err.value.issues[0].path == "services[0].ports[0]"


def test_bad_date_like_scalar_is_not_a_traceback() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(MINIMAL.replace("vip: 203.0.113.10", "vip: 2024-13-45"))
    assert info.value.issues[0].path == "services[0].vip"


def test_sexagesimal_is_not_a_number() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(MINIMAL.replace("ports: [80]", "ports: [1:30]"))
    issue = info.value.issues[0]
    assert issue.path == "services[0].ports[0]"
    assert "base-60" in issue.message


def test_unquoted_community_stays_text() -> None:
    text = MINIMAL + ("bgp:\n  local_asn: 65010\n  peers: [{name: r1, address: 192.0.2.1, "
                      "asn: 65000}]\n  defaults: {communities: [65000:10]}\n")
    cfg = parse_text(text)
    assert cfg.bgp is not None
    assert cfg.bgp.defaults.communities == ["65000:10"]


def test_very_large_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as out:
        out.write(MINIMAL)
        out.truncate(MAX_CONFIG_BYTES + 10)
    with pytest.raises(ConfigUnreadableError) as info:
        load_config(path)
    assert "larger than the limit" in str(info.value)


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_config(fifo)
        except ConfigUnreadableError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so the test process can exit
        with fifo.open("w"):
            pass
        pytest.fail("load_config blocked on a FIFO")
    assert outcome
    assert "a FIFO, not a regular file" in str(outcome[0])


@pytest.mark.parametrize("target", ["/dev/null", "/dev/zero", "/"])
def test_devices_and_directories_are_refused(target: str) -> None:
    with pytest.raises(ConfigUnreadableError) as info:
        load_config(target)
    assert "not a regular file" in str(info.value)


def test_fifo_via_cli_exits_2(tmp_path: Path) -> None:
    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    result = check(str(fifo))
    assert result.returncode == 2
    assert "FIFO" in result.stderr
    assert "Traceback" not in result.stderr


def test_examples_still_load() -> None:
    assert parse_text(GOOD).services
    assert yaml.safe_load(GOOD)  # the example is plain YAML that any tool reads
