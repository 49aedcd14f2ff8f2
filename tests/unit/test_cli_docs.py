"""Shell completion and the man page come from the command tree itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from speaker.cli import main
from speaker.metrics import REGISTRY

SPEAKER = [str(Path(sys.executable).parent / "speaker")]  # the console script


def test_bash_completion_completes_subcommands() -> None:
    script = CliRunner().invoke(main, ["completion", "bash"]).output
    assert "_SPEAKER_COMPLETE=bash_complete" in script
    env = {**os.environ, "COMP_WORDS": "speaker con", "COMP_CWORD": "1",
           "_SPEAKER_COMPLETE": "bash_complete"}
    out = subprocess.run(SPEAKER, env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert "plain,config" in out.stdout.splitlines()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells(shell: str) -> None:
    out = CliRunner().invoke(main, ["completion", shell])
    assert out.exit_code == 0
    assert "_SPEAKER_COMPLETE" in out.output


def test_man_page_lists_every_command() -> None:
    page = CliRunner().invoke(main, ["man"]).output
    assert page.startswith(".TH SPEAKER 1")
    for command in ("speaker run", "speaker status", "speaker config check",
                    "speaker config import\\-keepalived", "speaker router\\-config",
                    "speaker drain"):
        assert f".B {command}" in page, command


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db not installed")
def test_man_page_renders() -> None:
    page = CliRunner().invoke(main, ["man"]).output
    out = subprocess.run(["man", "-l", "-"], input=page, capture_output=True, text=True,
                         timeout=60, check=False, env={**os.environ, "MANWIDTH": "100"})
    assert out.returncode == 0, out.stderr
    assert "speaker config import-keepalived" in out.stdout


def test_process_metrics_are_exported() -> None:
    names = {family.name for family in REGISTRY.collect()}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names
