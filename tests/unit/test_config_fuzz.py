"""`speaker config check` never prints a traceback, whatever it is fed.

Random YAML-ish text, random documents, and mutations of the examples (values
swapped at random paths, characters flipped) go through the real command; the
exit code is 0 (valid), 1 (invalid, every error with its path) or 2 (unreadable),
and the output never holds a traceback. Derandomized, so CI runs the same cases
(SPEAKER_FUZZ_EXAMPLES=N runs N random ones instead).
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speaker.cli.main import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [p.read_text() for p in sorted((REPO / "examples").rglob("*.yaml"))]
DEEPER = os.environ.get("SPEAKER_FUZZ_EXAMPLES")
"""Set to run more (and random) examples locally: SPEAKER_FUZZ_EXAMPLES=5000."""
FUZZ = settings(max_examples=int(DEEPER or 80), deadline=None, derandomize=not DEEPER,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
WORK = Path(tempfile.mkdtemp(prefix="speaker-fuzz-"))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0.0.0.0", "::", "203.0.113.10", "1:30", "0660", ".inf", "65000:10",
                     "2024-13-45", "a\nb", "\u202e", "9" * 60, "", "~", "yes", "0x1F",
                     "250ms", "1e400"]),
)
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)
TOKENS = [*"abc019:-[]{},&*!|>'\"#%@?~. \n\t", "node:", "services:", "- ", "!!python/", "<<:",
          "&a ", "*a", "\n  ", "\x85", "\ufeff", "\x00"]
yamlish = st.lists(st.sampled_from(TOKENS), max_size=60).map("".join)


def check_text(text: str) -> None:
    path = WORK / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n--- input ---\n{text[:2000]}")
    assert result.exit_code in (0, 1, 2)
    assert "Traceback" not in result.output


def paths_of(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths_of(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths_of(value, (*prefix, i))
    return out


@FUZZ
@given(yamlish)
def test_yaml_ish_text(text: str) -> None:
    check_text(text)


@FUZZ
@given(documents)
def test_random_documents(doc: Any) -> None:
    check_text(yaml.safe_dump(doc))


@FUZZ
@given(st.sampled_from(EXAMPLES), st.data())
def test_examples_with_a_value_swapped(example: str, data: st.DataObject) -> None:
    doc = yaml.safe_load(example)
    path = data.draw(st.sampled_from(paths_of(doc)[1:]))
    mutated = copy.deepcopy(doc)
    node = mutated
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(documents)
    check_text(yaml.safe_dump(mutated))


@FUZZ
@given(st.sampled_from(EXAMPLES), st.data())
def test_examples_with_text_flipped(example: str, data: st.DataObject) -> None:
    text = example
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(text)))
        cut = data.draw(st.integers(min_value=0, max_value=8))
        insert = data.draw(yamlish.map(lambda s: s[:6]))
        text = text[:at] + insert + text[at + cut:]
    check_text(text)
