"""Golden files: every vendor's output (and --json) for every case, byte for byte.

Regenerate after an intended change with
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/routercfg/test_golden.py
and review the diff; CI fails on any drift.
"""

from __future__ import annotations

import os

import pytest

from speaker.routercfg.render import VENDORS
from tests.routercfg.cases import CASES, EXTENSION, GOLDEN, render_ok

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


@pytest.mark.parametrize("vendor", [*VENDORS, "json"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_output_matches_golden(case: str, vendor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    args = CASES[case] + (["--json"] if vendor == "json" else ["--vendor", vendor])
    text = render_ok(args, monkeypatch)
    path = GOLDEN / f"{case}.{EXTENSION.get(vendor, 'json')}"
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{path.name} drifted; if intended, regenerate with UPDATE_GOLDEN=1 and review the diff")


def test_no_stale_golden_files() -> None:
    expected = {f"{case}.{EXTENSION.get(v, 'json')}" for case in CASES
                for v in (*VENDORS, "json")}
    assert {p.name for p in GOLDEN.iterdir()} == expected


def test_worked_examples_in_the_docs_are_the_golden_output() -> None:
    doc = (GOLDEN.parents[2] / "docs" / "router-peering.md").read_text()
    for vendor in VENDORS:
        start = doc.index(f"```{vendor}\n") + len(f"```{vendor}\n")
        block = doc[start:doc.index("```\n", start)]
        golden = (GOLDEN / f"bgp-active-active.{EXTENSION[vendor]}").read_text()
        assert block == golden, f"docs/router-peering.md {vendor} example is stale"
