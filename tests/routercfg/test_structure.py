"""Junos, EOS and IOS-XR output is well formed by each vendor's documented syntax,
for every golden case and every router; and the checkers do catch broken text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.routercfg.cases import CASES, ROUTERS, render_ok, without_peers
from tests.routercfg.structure import check_eos, check_iosxr, check_junos

CHECKERS: dict[str, Callable[[str], list[str]]] = {
    "junos": check_junos, "eos": check_eos, "iosxr": check_iosxr}
RENDERS = [(case, router) for case in sorted(CASES) for router in ROUTERS[case]]


@pytest.mark.parametrize("vendor", sorted(CHECKERS))
@pytest.mark.parametrize(("case", "router"), RENDERS)
def test_output_is_well_formed(vendor: str, case: str, router: str,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    args = [*without_peers(CASES[case]), "--peer", router, "--vendor", vendor]
    text = render_ok(args, monkeypatch)
    assert CHECKERS[vendor](text) == []


@pytest.mark.parametrize("vendor", sorted(CHECKERS))
def test_merged_dual_stack_output_is_well_formed(vendor: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = render_ok([*CASES["knobs"], "--peer", "203.0.113.254", "--peer",
                      "2001:db8:ffff::1", "--vendor", vendor], monkeypatch)
    assert CHECKERS[vendor](text) == []


BROKEN = {
    "junos": [
        ("import EDGE-SPEAKER-IN;", "import EDGE-SPEAKER-TYPO;", "referenced but not defined"),
        ("                }\n            }\n", "                }\n", "unclosed blocks"),
        ("prefix-length-range /32-/32", "prefix-length-range /33-/32", "bad route-filter"),
        ("hold-time 9;", "hold-time 9", "must end with"),
    ],
    "eos": [
        ("route-map EDGE-SPEAKER-IN-V4 in", "route-map EDGE-SPEAKER-IN-V9 in", "not defined"),
        ("seq 5 permit 203.0.113.64/27 ge 32", "seq 5 permit 203.0.113.64/27 ge 33",
         "out of range"),
        ("   match ip address prefix-list EDGE-SPEAKER-IN-V4",
         "   match ip address prefix-list EDGE-SPEAKER-IN-V6", "is used but not defined"),
    ],
    "iosxr": [
        ("  203.0.113.64/27 ge 32 le 32", "  203.0.113.64/27 ge 32 le 32,", "commas"),
        ("route-policy EDGE-SPEAKER-OUT out", "route-policy EDGE-SPEAKER-0UT out",
         "not defined"),
        ("    drop\n  endif", "    drop\n", "unbalanced"),
    ],
}


@pytest.mark.parametrize("vendor", sorted(BROKEN))
def test_checker_catches_broken_text(vendor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = "lab-pair" if vendor == "junos" else "bgp-active-active"
    text = render_ok([*CASES[case], "--vendor", vendor], monkeypatch)
    if vendor == "eos":  # EOS writes seq 10, 20...; use a line that is in the text
        text = text.replace("seq 10 permit 203.0.113.64/27", "seq 5 permit 203.0.113.64/27")
    assert CHECKERS[vendor](text) == []
    for good, bad, message in BROKEN[vendor]:
        assert good in text, good
        problems = CHECKERS[vendor](text.replace(good, bad, 1))
        assert any(message in p for p in problems), (bad, problems)
