"""Apply an update artifact to the inactive slot and make the next boot try it.

Order of work, so that a failure at any point leaves the appliance booting what it
booted before: (1) plan (inactive slot, refused while the running slot is on trial),
(2) remove the inactive slot's old boot entry, so nothing can boot a half-written
slot, (3) stream the artifact: signature first, then the kernel and initrd to
``ESP/slot-X/*.new`` and the root straight to the partition, each checked against
the signed manifest, (4) read the partition back and check its digest again,
(5) move the kernel and initrd into place and write the new entry with a boot
counter (``+N-0``) last. The running slot is never written.

The disk side is behind :class:`SlotDevices` (the real one finds ``root-a``/``root-b``
on the disk the running root lives on); the ESP is a directory. Unit tests give a
directory and plain files.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from speaker.appliance.artifact import CHUNK, ArtifactError, Manifest, read_artifact
from speaker.appliance.signing import Verifier
from speaker.appliance.slots import (
    UpdatePlan,
    entry_text,
    plan_update,
    read_entries,
    running_slot,
    slot_report,
)

ESP = Path("/efi")
OS_RELEASE = Path("/etc/os-release")
DEFAULT_TRIES = 1


class SlotDevices(Protocol):
    """The slots' partitions."""

    def size(self, slot: str) -> int:
        """Bytes the slot's partition holds."""

    def open_write(self, slot: str) -> IO[bytes]:
        """The slot's partition, open for writing from its first byte."""

    def open_read(self, slot: str) -> IO[bytes]:
        """The slot's partition, open for reading."""


class BlockSlots:
    """``root-a``/``root-b`` partitions on the disk that holds the running root."""

    def _device(self, slot: str) -> str:
        out = subprocess.run(["lsblk", "--json", "--paths", "-o", "NAME,PKNAME,PARTLABEL,"
                              "MOUNTPOINT"], check=True, capture_output=True, text=True).stdout
        devices = json.loads(out)["blockdevices"]
        flat: list[dict[str, str | None]] = []

        def walk(nodes: list[dict[str, object]]) -> None:
            for node in nodes:
                flat.append({k: node.get(k) for k in ("name", "pkname", "partlabel",  # type: ignore[misc]
                                                      "mountpoint")})
                walk(node.get("children", []))  # type: ignore[arg-type]

        walk(devices)
        root = next((d for d in flat if d["mountpoint"] == "/"), None)
        disk = None if root is None else root["pkname"]
        for dev in flat:
            if dev["partlabel"] == f"root-{slot}" and (disk is None or dev["pkname"] == disk):
                return str(dev["name"])
        raise ArtifactError(f"no partition labelled root-{slot} on the boot disk")

    def size(self, slot: str) -> int:
        with open(self._device(slot), "rb") as fh:
            return fh.seek(0, os.SEEK_END)

    def open_write(self, slot: str) -> IO[bytes]:
        return open(self._device(slot), "r+b")

    def open_read(self, slot: str) -> IO[bytes]:
        fh = open(self._device(slot), "rb")  # noqa: SIM115 (the caller closes it)
        # drop the cached pages: the read-back must come from the disk, not from memory
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return fh


class _Synced(AbstractContextManager["_Synced"]):
    """A writable stream that is flushed and fsynced when closed."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh

    def write(self, data: bytes) -> int:
        return self.fh.write(data)

    def __exit__(self, *exc: object) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class SlotSinks:
    """Payload destinations for one slot: kernel/initrd on the ESP, root on the partition."""

    def __init__(self, esp: Path, slot: str, devices: SlotDevices) -> None:
        self.dir = esp / f"slot-{slot}"
        self.slot, self.devices = slot, devices

    def open(self, name: str, size: int) -> IO[bytes]:
        if name == "root.sqfs":
            return _Synced(self.devices.open_write(self.slot))  # type: ignore[return-value]
        self.dir.mkdir(parents=True, exist_ok=True)
        return _Synced((self.dir / f"{name}.new").open("wb"))  # type: ignore[return-value]

    def discard(self, name: str) -> None:
        if name != "root.sqfs":
            (self.dir / f"{name}.new").unlink(missing_ok=True)

    def commit(self) -> None:
        for name in ("vmlinuz", "initrd.img"):
            (self.dir / f"{name}.new").replace(self.dir / name)


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did."""

    plan: UpdatePlan
    manifest: Manifest
    seconds: float


def open_source(source: str, timeout: float = 60.0) -> IO[bytes]:
    """The artifact's byte stream: a local path, ``-`` (stdin) or an http(s) URL."""
    if source == "-":
        return sys.stdin.buffer
    if source.startswith(("http://", "https://")):
        try:
            return urllib.request.urlopen(source, timeout=timeout)  # type: ignore[no-any-return]  # noqa: S310 (scheme checked)
        except OSError as exc:
            raise ArtifactError(f"cannot fetch {source}: {exc}") from None
    try:
        return open(source, "rb")
    except OSError as exc:
        raise ArtifactError(f"cannot read {source}: {exc.strerror}") from None


def read_back(devices: SlotDevices, slot: str, size: int) -> str:
    """SHA-256 of the first ``size`` bytes of the slot's partition."""
    h = hashlib.sha256()
    with devices.open_read(slot) as fh:
        left = size
        while left > 0 and (chunk := fh.read(min(CHUNK, left))):
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def apply_update(stream: IO[bytes], *, esp: Path, cmdline: str, devices: SlotDevices,
                 verifier: Verifier, tries: int = DEFAULT_TRIES, force: bool = False,
                 progress: Callable[[str, int], None] = lambda n, d: None) -> Applied:
    """Write the artifact on ``stream`` to the inactive slot; the next boot tries it.

    Raises :class:`~speaker.appliance.slots.UpdateRefusedError` (no write at all) or
    :class:`ArtifactError` (the inactive slot has no entry left; the running one is
    untouched and still boots)."""
    start = time.monotonic()
    entries_dir = esp / "loader" / "entries"
    plan = plan_update(running_slot(cmdline), read_entries(entries_dir), tries, force)
    room = devices.size(plan.slot)

    def before_payload(manifest: Manifest) -> None:
        need = manifest.files["root.sqfs"].size
        if need > room:
            raise ArtifactError(f"root.sqfs is {need >> 20} MiB, slot {plan.slot} holds only "
                                f"{room >> 20} MiB")
        for old in plan.replaces:  # nothing may boot the slot while it is rewritten
            (entries_dir / old).unlink(missing_ok=True)

    sinks = SlotSinks(esp, plan.slot, devices)
    manifest = read_artifact(stream, verifier, sinks, before_payload, progress)
    want = manifest.files["root.sqfs"]
    got = read_back(devices, plan.slot, want.size)
    if got != want.sha256:
        raise ArtifactError(f"slot {plan.slot} reads back sha256 {got}, the manifest says "
                            f"{want.sha256}: the disk did not keep what was written")
    sinks.commit()
    _write_atomic(entries_dir / plan.entry,
                  entry_text(plan.slot, manifest.version, manifest.options))
    os.sync()
    return Applied(plan, manifest, time.monotonic() - start)


def ensure_esp(esp: Path = ESP) -> None:
    """Mount the ESP (by its fstab line) if boot did not: udev can be slower than any
    device timeout on a loaded machine, and boot must never wait for the ESP."""
    if not os.path.ismount(esp):
        subprocess.run(["mount", str(esp)], check=False, capture_output=True, timeout=120)


def image_version(os_release: Path = OS_RELEASE) -> str:
    """``IMAGE_VERSION`` of the running image's os-release."""
    try:
        for line in os_release.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "IMAGE_VERSION":
                return value.strip().strip('"')
    except OSError:
        pass
    return "unknown"


def is_appliance(os_release: Path = OS_RELEASE) -> bool:
    try:
        return "IMAGE_ID=edge-speaker" in os_release.read_text()
    except OSError:
        return False


def report(esp: Path = ESP, cmdline: str | None = None,
           os_release: Path = OS_RELEASE) -> dict[str, object]:
    """Running and staged versions and slots of this appliance."""
    if cmdline is None:
        cmdline = Path("/proc/cmdline").read_text()
    doc = slot_report(running_slot(cmdline), image_version(os_release),
                      read_entries(esp / "loader" / "entries"))
    if not (esp / "loader").is_dir():
        doc["error"] = f"the ESP is not mounted at {esp}"
    return doc
