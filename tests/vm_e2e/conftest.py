"""The appliance pair, booted once per test module and shared by its tests."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.image import build_image
from tests.vm.netns import namespaces
from tests.vm_e2e.pair import PREFIX, Pair, build_pair, run_tag


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the VM tier needs root (namespaces, taps)"
    for tool in ("qemu-system-x86_64", "debootstrap", "cpio", "ip", "bird", "birdc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    start = time.monotonic()
    image = build_image()
    built = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}e2e-"))
    try:
        with namespaces(PREFIX) as nss:
            lab = build_pair(image, workdir, nss, run_tag())
            print(f"\nVM image {built - start:.1f} s, pair boot {time.monotonic() - built:.1f} s")
            try:
                yield lab
            finally:
                if request.session.testsfailed:
                    _dump(lab)
                lab.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _dump(lab: Pair) -> None:
    """After a failure: what each guest's speaker and the router saw."""
    for node in lab.nodes.values():
        if node.alive:
            print(f"\n--- {node.name}: speaker log, IPVS\n{node.log()}\n{node.ipvs()}")
    print(f"\n--- BIRD\n{lab.bird_cmd('show', 'protocols')}")
