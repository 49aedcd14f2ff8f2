"""Fixtures of the image tier: build the image once, boot it once per session, clean up."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class UpdateArtifacts:
    """Update artifacts of two more builds of this checkout (no disk image)."""

    good: Path
    good_version: str
    broken: Path
    broken_version: str
    directory: Path
    """Holds both as ``good.update.tar`` and ``broken.update.tar`` (what HTTP serves)."""


GOOD_VERSION, BROKEN_VERSION = "2.0.0-test", "3.0.0-broken"


@pytest.fixture(scope="session")
def update_artifacts(image: Path) -> Iterator[UpdateArtifacts]:
    """v2 (good) and v3 (edge-speaker fails to start) as update artifacts, cached like
    the image. Hard-linked into a temp dir so that a prune by another build sharing the
    cache cannot take them away mid-test."""
    import builder  # type: ignore[import-not-found]

    start = time.monotonic()
    good = builder.build(GOOD_VERSION, disk=False)
    broken = builder.build(BROKEN_VERSION, broken=True, disk=False)
    print(f"\nupdate artifacts ready in {time.monotonic() - start:.1f} s "
          f"({good.update.stat().st_size >> 20} MiB each)")
    directory = Path(tempfile.mkdtemp(prefix="eim-updates-"))
    try:
        paths = []
        for name, built in (("good", good), ("broken", broken)):
            path = directory / f"{name}.update.tar"
            try:
                os.link(built.update, path)
            except OSError:  # another file system: a copy
                shutil.copy2(built.update, path)
            paths.append(path)
        yield UpdateArtifacts(paths[0], GOOD_VERSION, paths[1], BROKEN_VERSION, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def appliance_lab(image: Path) -> Iterator[ApplianceLab]:
    """The lab with the appliance powered on (not yet waited for)."""
    workdir = Path(tempfile.mkdtemp(prefix="eim-"))
    # EIM_PREFIX: another 3-letter namespace prefix (a shared machine's convention)
    prefix = f"{os.environ.get('EIM_PREFIX', 'eim')[:3]}{os.getpid() % 1000:03d}"
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
