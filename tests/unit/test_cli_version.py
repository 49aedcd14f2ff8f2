"""`speaker --version` names the ExaBGP it will run, without starting it."""

from __future__ import annotations

from importlib.metadata import version

from click.testing import CliRunner

from speaker.cli import main


def test_version_names_exabgp() -> None:
    out = CliRunner().invoke(main, ["--version"])
    assert out.exit_code == 0
    assert f"(ExaBGP {version('exabgp')})" in out.output
