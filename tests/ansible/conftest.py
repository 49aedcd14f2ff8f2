"""Session fixtures of the Ansible proof: the server disk, the wheels, the booted lab.

The lab (two VMs, 1 vCPU and 1 GiB each) boots once per session and every VM test
reuses it; the tests run in file order on it (site, second run, bad variables,
rolling upgrade). Everything is removed at the end, also when a test fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ansible.lab import AnsibleLab, ansible_lab
from tests.ansible.server_image import ServerImage, build_server_image
from tests.ansible.wheels import build_wheels


@pytest.fixture(scope="session")
def server_image() -> ServerImage:
    return build_server_image()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="s3a-ansible-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheels(workdir: Path) -> tuple[Path, str, str]:
    """(wheels dir, current version, next version)."""
    out = workdir / "wheels"
    current, upcoming = build_wheels(out)
    return out, current, upcoming


@pytest.fixture(scope="session")
def lab(server_image: ServerImage, workdir: Path) -> Iterator[AnsibleLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, taps, qemu)")
    prefix = f"s3a{secrets.token_hex(1)}"
    labdir = workdir / "lab"
    labdir.mkdir()
    with ansible_lab(server_image, labdir, prefix) as booted:
        booted.wait_for_ssh()
        yield booted
