"""Session fixtures of the VM tier: build the image once, boot one guest, clean up always."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.image import build_image
from tests.vm.machine import Lab, build_lab
from tests.vm.netns import namespaces, run_id, sweep_stale


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the VM tier needs root (namespaces, taps)"
    for tool in ("qemu-system-x86_64", "debootstrap", "cpio", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    start = time.monotonic()
    sweep_stale()
    image = build_image()
    built = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="esv-vm-"))
    with namespaces() as nss:
        lab = build_lab(image, workdir, nss, run_id())
        booted = time.monotonic()
        print(f"\nVM image {built - start:.1f} s, lab + boot {booted - built:.1f} s")
        try:
            yield lab
        finally:
            lab.vm.close()
    shutil.rmtree(workdir, ignore_errors=True)
