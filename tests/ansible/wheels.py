"""Wheels the appliance role ships: the locked runtime deps and edge-speaker at two versions.

The dependency wheels are cached under ``$EDGE_SPEAKER_CACHE/ansible/wheels`` (``pip
wheel`` reuses a registry's wheel and builds one where there is only an sdist). The
speaker is built from this checkout twice: as it is (``current``) and from a temporary
copy whose version is the next patch release (``next``), so ``rolling_upgrade.yml`` has
a real version step to make.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.ansible.server_image import cache_dir
from tests.vm.image import REPO, runtime_requirements

VERSION = re.compile(r'^version = "([^"]+)"$', re.M)


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q",
                           *args], capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"pip {args[0]} failed: {proc.stderr[-2000:]}")


def current_version() -> str:
    match = VERSION.search((REPO / "pyproject.toml").read_text())
    assert match, "pyproject.toml has no version"
    return match.group(1)


def next_version(version: str) -> str:
    major, minor, patch = (int(x) for x in version.split(".")[:3])
    return f"{major}.{minor}.{patch + 1}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def build_wheels(out: Path) -> tuple[str, str]:
    """Fill ``out`` with the dependency wheels and both speaker wheels; return the versions."""
    reqs = runtime_requirements()
    cache = cache_dir() / "wheels"
    cache.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        req_file = Path(tmpdir) / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        _pip("wheel", "--no-deps", "-w", str(cache), "-r", str(req_file))
    out.mkdir(parents=True, exist_ok=True)
    for req in reqs:
        name, _, version = req.partition("==")
        prefix = f"{_norm(name)}-{version}-"
        found = [w for w in cache.glob("*.whl") if _norm(w.name.split("-")[0]) + "-"
                 + w.name.split("-")[1] + "-" == prefix]
        assert found, f"no wheel for {req} in {cache}"
        for wheel in found:
            shutil.copy2(wheel, out / wheel.name)
    current = current_version()
    upcoming = next_version(current)
    _pip("wheel", "--no-deps", "-w", str(out), str(REPO))
    with tempfile.TemporaryDirectory() as tmpdir:
        copy = Path(tmpdir) / "src"
        copy.mkdir()
        for item in ("pyproject.toml", "README.md", "LICENSE"):
            if (REPO / item).exists():
                shutil.copy2(REPO / item, copy / item)
        for pkg in ("speaker", "dataplane"):
            shutil.copytree(REPO / pkg, copy / pkg,
                            ignore=shutil.ignore_patterns("__pycache__"))
        pyproject = copy / "pyproject.toml"
        pyproject.write_text(VERSION.sub(f'version = "{upcoming}"', pyproject.read_text(), 1))
        _pip("wheel", "--no-deps", "-w", str(out), str(copy))
    return current, upcoming
