"""The real daemons accept the generated configs: FRR's and BIRD's parsers and
gobgpd's dry run, for every golden case and every router in it (one config each)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.routercfg.cases import CASES, ROUTERS, render_ok, without_peers

RENDERS = [(case, router) for case in sorted(CASES) for router in ROUTERS[case]]
MERGED = [case for case in sorted(CASES) if "--peer" in CASES[case]]


@pytest.fixture
def conf_dir() -> Iterator[Path]:
    """A directory FRR can read after dropping to user frr (pytest's tmp_path cannot)."""
    with tempfile.TemporaryDirectory(prefix="esr-conf-") as name:
        Path(name).chmod(0o755)
        yield Path(name)


def _args(case: str, router: str | None) -> list[str]:
    return CASES[case] if router is None else [*without_peers(CASES[case]), "--peer", router]


def _write(conf_dir: Path, text: str, name: str) -> Path:
    path = conf_dir / name
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.mark.skipif(not shutil.which("vtysh"), reason="FRR is not installed")
@pytest.mark.parametrize(("case", "router"), [*RENDERS, *((c, None) for c in MERGED)])
def test_frr_accepts(case: str, router: str | None, conf_dir: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(conf_dir, render_ok([*_args(case, router), "--vendor", "frr"], monkeypatch),
                  "frr.conf")
    vtysh = subprocess.run(["vtysh", "-C", "-f", str(path)], capture_output=True, text=True,
                           check=False)
    assert vtysh.returncode == 0, vtysh.stdout + vtysh.stderr
    # each daemon's own dry run exits 0 even on errors: an error is an "[EC ...]" log
    # line. The integrated frr.conf holds a `bfd` block (bfdd's) beside bgpd's part.
    bgp_part, bfd_part = _split_bfd(path.read_text())
    parts = [("bgpd", _write(conf_dir, bgp_part, "bgpd.conf"))]
    if bfd_part:
        parts.append(("bfdd", _write(conf_dir, bfd_part, "bfdd.conf")))
    for daemon, part in parts:
        run = subprocess.run([f"/usr/lib/frr/{daemon}", "-C", "-f", str(part)],
                             capture_output=True, text=True, check=False)
        errors = [line for line in (run.stdout + run.stderr).splitlines() if "[EC " in line]
        assert run.returncode == 0
        assert errors == [], daemon


def _split_bfd(text: str) -> tuple[str, str]:
    """(everything but the top-level `bfd` block, that block)."""
    bgp, bfd, inside = [], [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "bfd":
            inside = True
        (bfd if inside else bgp).append(line)
        if inside and line.rstrip() == "exit":
            inside = False
    return "".join(bgp), "".join(bfd)


@pytest.mark.skipif(not shutil.which("bird"), reason="BIRD is not installed")
@pytest.mark.parametrize(("case", "router"), [*RENDERS, *((c, None) for c in MERGED)])
def test_bird_accepts(case: str, router: str | None, conf_dir: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(conf_dir, render_ok([*_args(case, router), "--vendor", "bird"], monkeypatch),
                  "bird.conf")
    result = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("gobgpd"), reason="GoBGP is not installed")
@pytest.mark.parametrize(("case", "router"), [*RENDERS, *((c, None) for c in MERGED)])
def test_gobgpd_accepts(case: str, router: str | None, conf_dir: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(conf_dir, render_ok([*_args(case, router), "--vendor", "gobgp"],
                                      monkeypatch), "gobgpd.toml")
    result = subprocess.run(["gobgpd", "-d", "-f", str(path)], capture_output=True, text=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checks_can_fail(conf_dir: Path) -> None:
    """The daemons' checks used above do reject a broken config."""
    bad = _write(conf_dir, "router bgp 65000\n neighbor 192.0.2.1 no-such-knob\n", "bad.conf")
    if shutil.which("vtysh"):
        result = subprocess.run(["vtysh", "-C", "-f", str(bad)], capture_output=True, check=False)
        assert result.returncode != 0
    if shutil.which("bird"):
        result = subprocess.run(["bird", "-p", "-c", str(bad)], capture_output=True, check=False)
        assert result.returncode != 0
    if shutil.which("gobgpd"):
        toml = _write(conf_dir, "[global.config]\n  as = \"x\"\n", "bad.toml")
        result = subprocess.run(["gobgpd", "-d", "-f", str(toml)], capture_output=True,
                                check=False, timeout=30)
        assert result.returncode != 0
