"""The one-pass YAML builder gives exactly what the careful path gives, or steps aside.

speaker.config.yamlonepass builds values from libyaml's events; anything unusual
(tags, limits, duplicate or complex keys, merge keys, odd aliases, several
documents) must come back as FALLBACK so that the careful path words the error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speaker.config import ConfigError, ConfigUnreadableError, parse_text, yamlonepass
from speaker.config.yamlsafe import (
    MAX_DEPTH,
    MAX_NODES,
    _Loader,
    _parse_yaml_carefully,
    parse_yaml,
)

REPO = Path(__file__).resolve().parents[2]


def onepass(text: str) -> Any:
    loader = _Loader(text)
    try:
        return yamlonepass.build(loader, MAX_DEPTH, MAX_NODES)
    finally:
        loader.dispose()


def careful(text: str) -> Any:
    return _parse_yaml_carefully(text, "t")[0]


SAME = [
    "", "---\n", "a: 1\n", "[1, 2, 3]\n", "just text\n", "a: {b: [1, {c: d}]}\n",
    "a: 1:30\nb: 2024-01-01\nc: 0x1F\nd: 017\ne: 1_000\nf: .5\ng: .inf\nh: -.inf\n",
    "a: yes\nb: no\nc: on\nd: ~\ne: null\nf: 'quoted 1'\ng: \"2\"\nh: true\n",
    "a: &x {p: 1}\nb: *x\nc: [*x, *x]\n", "a: &s text\nb: *s\n",
    "a: |\n  block\n  text\nb: >\n  folded\n", "a: =\nb: '<<'\n", "? a\n: 1\n",
    "a: []\nb: {}\nc: [[], [{}]]\n", "1: one\n'1': string one\n",
]
FALLS_BACK = [
    "a: 1\na: 2\n", "a: {b: 1, b: 2}\n", "base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n",
    "a: !!str 1\n", "a: !foo x\n", "!!map {a: 1}\n", "? [a, b]\n: 1\n", "? {a: 1}\n: 2\n",
    "a: *nowhere\n", "a: &r [*r]\n", "--- 1\n--- 2\n", "a: [1, 2\n", "a: 1\n b: 2\n",
    "a: " + "9" * 41 + "\n", "true: 1\nyes: 2\n", "1: a\n1.0: b\n",
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
]


@pytest.mark.parametrize("text", SAME)
def test_plain_yaml_builds_the_same_values(text: str) -> None:
    assert onepass(text) == careful(text)


@pytest.mark.parametrize("text", FALLS_BACK)
def test_anything_unusual_takes_the_careful_path(text: str) -> None:
    assert onepass(text) is yamlonepass.FALLBACK


def test_aliases_share_one_value_like_the_constructor() -> None:
    data = onepass("a: &x {p: 1}\nb: *x\n")
    assert data["a"] is data["b"]


def test_alias_expansions_count_towards_the_limit() -> None:
    # each level doubles: 2**22 > MAX_NODES values while the text stays tiny
    lines = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 23)]
    text = "\n".join(lines) + "\n"
    start = time.process_time()
    assert onepass(text) is yamlonepass.FALLBACK
    assert time.process_time() - start < 0.5


def test_merge_keys_still_merge() -> None:
    data, _, issues = parse_yaml("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n", "t")
    assert data["use"] == {"x": 1, "y": 2}
    assert issues == []


def test_errors_found_after_a_one_pass_parse_still_name_their_line() -> None:
    text = ("node:\n  name: lb1\n  router_id: 192.0.2.10\n  interfaces: [{name: eth0}]\n"
            "services:\n  - name: web\n    vip: 203.0.113.10\n    ports: [80]\n"
            "    announce: l2\n    backends: [{address: 198.51.100.11, port: 0}]\n")
    assert parse_yaml(text, "t")[1] is None  # took the one pass: no node tree
    with pytest.raises(ConfigError) as info:
        parse_text(text)
    (issue,) = info.value.issues
    assert issue.path == "services[0].backends[0].port"
    assert issue.line == 10


def test_duplicate_key_message_is_unchanged() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text("node: {}\nnode: {}\n")
    (issue,) = info.value.issues
    assert (issue.path, issue.line) == ("node", 2)
    assert "first at line 1" in issue.message


def test_deep_list_is_refused_cheaply_with_its_path() -> None:
    text = "a: " + "[" * 50_000 + "]" * 50_000 + "\n"
    start = time.process_time()
    with pytest.raises(ConfigUnreadableError, match="nested deeper"):
        parse_text(text)
    assert time.process_time() - start < 0.5


def test_examples_take_the_one_pass() -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        text = path.read_text()
        data = onepass(text)
        if data is not yamlonepass.FALLBACK:
            assert data == careful(text), path


_scalars = st.one_of(
    st.integers(-10**6, 10**6).map(str), st.sampled_from(
        ["yes", "no", "null", "~", "1:30", "0x1f", "017", "1e3", "1.5", ".nan", "'q'", "\"7\"",
         "2024-01-01", "a b", "x", "<<", "=", "true", "''"]),
)
_keys = st.sampled_from(["a", "b", "c", "1", "true", "'a'", "x y"])


def _flow(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _scalars
    inner = _flow(depth - 1)
    return st.one_of(
        _scalars,
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(_keys, inner), max_size=4).map(
            lambda kvs: "{" + ", ".join(f"{k}: {v}" for k, v in kvs) + "}"),
    )


@settings(max_examples=300, deadline=None)
@given(_flow(3))
def test_one_pass_agrees_with_the_careful_path(text: str) -> None:
    built = onepass(text + "\n")
    if built is yamlonepass.FALLBACK:
        return
    careful_data, _root, issues = _parse_yaml_carefully(text + "\n", "t")
    assert issues == []  # a duplicate key never gets through the one pass
    assert repr(built) == repr(careful_data)
