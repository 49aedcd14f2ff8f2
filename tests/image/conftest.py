"""Fixtures of the image tier: build the image once, boot it once per session, clean up."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from speaker.lab.netns import Lab, leftover_namespaces
from tests.image.appliance import ApplianceLab, build_lab

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("qemu-system-x86_64", "mmdebstrap", "mksquashfs", "mkfs.vfat", "mcopy",
         "systemd-repart", "zstd", "bird", "ssh")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the image tier needs root (mmdebstrap, namespaces, taps)"
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install)"
    if not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").exists():
        return "OVMF is not installed (package ovmf)"
    return None


@pytest.fixture(scope="session")
def image() -> Path:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    sys.path.insert(0, str(REPO / "images"))
    import builder  # type: ignore[import-not-found]

    start = time.monotonic()
    built = builder.build()
    print(f"\nimage {built.raw.name} ready in {time.monotonic() - start:.1f} s")
    return Path(built.raw)


@pytest.fixture(scope="session")
def appliance_lab(image: Path) -> Iterator[ApplianceLab]:
    """The lab with the appliance powered on (not yet waited for)."""
    workdir = Path(tempfile.mkdtemp(prefix="eim-"))
    prefix = f"eim{os.getpid() % 1000:03d}"
    try:
        with Lab(prefix) as lab:
            al = build_lab(lab, image, workdir)
            al.powered_on = al.appliance.power_on()
            try:
                yield al
            finally:
                al.appliance.close()
                for backend in al.backends:
                    backend.stop()
                if os.environ.get("EIM_KEEP_CONSOLE"):
                    shutil.copy2(al.appliance.console, os.environ["EIM_KEEP_CONSOLE"])
        assert not leftover_namespaces(prefix)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
