"""The update artifact: one uncompressed tar, read as a stream, verified as it goes.

An artifact carries one slot's worth of the appliance, in this order::

    manifest.json        format, name, version, architecture, size + sha256 of each file
    manifest.json.sig    Ed25519 signature of manifest.json (OpenSSH ``ssh-keygen -Y``)
    vmlinuz, initrd.img  the slot's kernel and initrd (they go to the ESP)
    root.sqfs            the slot's read-only root (written raw to the inactive partition)

The order lets the appliance check the signature before it reads one byte of the
payload, and then check every file's digest while it streams it to where it goes:
an HTTP download never has to fit on the appliance's small disk. Only
:func:`read_artifact`'s caller decides where a file goes (a :class:`Sinks`); this
module never writes to a disk itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from speaker.appliance.signing import SignatureError, Verifier

FORMAT = 1
NAME = "edge-speaker"
ARCH = "x86-64"
MANIFEST, SIGNATURE = "manifest.json", "manifest.json.sig"
PAYLOAD = ("vmlinuz", "initrd.img", "root.sqfs")
MAX_MANIFEST = 64 << 10
CHUNK = 1 << 20


class ArtifactError(Exception):
    """The artifact is refused: wrong, corrupt, unsigned or not for this appliance."""


@dataclass(frozen=True, slots=True)
class FileDigest:
    """Size and SHA-256 of one payload file."""

    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an artifact says it is; signed, so it can be trusted once verified."""

    version: str
    files: dict[str, FileDigest]
    options: str = ""
    """Kernel command-line options the slot's boot entry adds (after ``root=``)."""

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "name": NAME, "arch": ARCH, "version": self.version,
               "options": self.options,
               "files": {n: {"size": d.size, "sha256": d.sha256}
                         for n, d in sorted(self.files.items())}}
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def parse_manifest(data: bytes) -> Manifest:
    """The manifest, or :class:`ArtifactError` naming what is wrong with it."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ArtifactError(f"{MANIFEST} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{MANIFEST} is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ArtifactError(f"artifact format {doc.get('format')!r}, this appliance reads "
                            f"format {FORMAT}")
    if doc.get("name") != NAME or doc.get("arch") != ARCH:
        raise ArtifactError(f"artifact is for {doc.get('name')!r}/{doc.get('arch')!r}, "
                            f"not {NAME}/{ARCH}")
    version = doc.get("version")
    if not isinstance(version, str) or not _safe_text(version, 64):
        raise ArtifactError(f"bad version {version!r} (1-64 printable characters)")
    options = doc.get("options", "")
    if not isinstance(options, str) or (options and not _safe_text(options, 512)):
        raise ArtifactError("bad kernel options in the manifest")
    files: dict[str, FileDigest] = {}
    raw_files = doc.get("files")
    if not isinstance(raw_files, dict) or set(raw_files) != set(PAYLOAD):
        raise ArtifactError(f"manifest must list exactly {', '.join(PAYLOAD)}")
    for name, entry in raw_files.items():
        try:
            size, digest = int(entry["size"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"manifest entry of {name} is malformed") from None
        if size < 0 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ArtifactError(f"manifest entry of {name} is malformed")
        files[name] = FileDigest(size, digest)
    return Manifest(version, files, options)


def _safe_text(text: str, limit: int) -> bool:
    return 0 < len(text) <= limit and all(" " <= c <= "~" for c in text)


class Sinks(Protocol):
    """Where the payload goes; the updater gives real partitions and the ESP, tests
    give files."""

    def open(self, name: str, size: int) -> IO[bytes]:
        """A writable stream for payload file ``name`` (``size`` bytes)."""

    def discard(self, name: str) -> None:
        """Forget what was written for ``name`` (its digest did not match)."""


def read_artifact(stream: IO[bytes], verifier: Verifier, sinks: Sinks,
                  check_manifest: Callable[[Manifest], None] = lambda m: None,
                  progress: Callable[[str, int], None] = lambda name, n: None) -> Manifest:
    """Stream an artifact from ``stream`` into ``sinks``; the verified manifest.

    Raises :class:`ArtifactError` on any defect: missing or bad signature, a file
    that is not in the manifest, a size or digest that differs, a truncated stream.
    ``check_manifest`` may refuse a verified manifest (e.g. too big for the slot)
    before any payload is written."""
    try:
        tar = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise ArtifactError(f"not an update artifact (tar): {exc}") from None
    try:
        return _read(tar, verifier, sinks, check_manifest, progress)
    except (tarfile.TarError, EOFError) as exc:
        raise ArtifactError(f"artifact is truncated or corrupt: {exc}") from None
    finally:
        tar.close()


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo | None, name: str) -> bytes:
    if member is None or member.name != name or not member.isfile():
        got = "end of archive" if member is None else repr(member.name)
        raise ArtifactError(f"artifact must start with {MANIFEST} and {SIGNATURE}, found {got}")
    if member.size > MAX_MANIFEST:
        raise ArtifactError(f"{name} is {member.size} bytes, more than {MAX_MANIFEST}")
    fh = tar.extractfile(member)
    if fh is None:  # cannot happen for a regular file
        raise ArtifactError(f"{name} has no content")
    return fh.read()


def _read(tar: tarfile.TarFile, verifier: Verifier, sinks: Sinks,
          check_manifest: Callable[[Manifest], None],
          progress: Callable[[str, int], None]) -> Manifest:
    manifest_bytes = _member_bytes(tar, tar.next(), MANIFEST)
    signature = _member_bytes(tar, tar.next(), SIGNATURE)
    try:
        verifier.verify(manifest_bytes, signature)
    except SignatureError as exc:
        raise ArtifactError(f"signature refused: {exc}") from None
    manifest = parse_manifest(manifest_bytes)
    check_manifest(manifest)
    seen: set[str] = set()
    while (member := tar.next()) is not None:
        name = member.name
        if name not in manifest.files or not member.isfile():
            raise ArtifactError(f"unexpected member {name!r} in the artifact")
        if name in seen:
            raise ArtifactError(f"{name} appears twice in the artifact")
        seen.add(name)
        want = manifest.files[name]
        if member.size != want.size:
            raise ArtifactError(f"{name} is {member.size} bytes, the manifest says {want.size}")
        src = tar.extractfile(member)
        if src is None:  # cannot happen for a regular file
            raise ArtifactError(f"{name} has no content")
        digest = hashlib.sha256()
        with sinks.open(name, want.size) as out:
            done = 0
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                progress(name, done)
        if digest.hexdigest() != want.sha256:
            sinks.discard(name)
            raise ArtifactError(f"checksum mismatch for {name}: sha256 {digest.hexdigest()}, "
                                f"the manifest says {want.sha256}")
    missing = set(PAYLOAD) - seen
    if missing:
        raise ArtifactError(f"artifact is truncated: {', '.join(sorted(missing))} missing")
    return manifest


def file_digest(path: Path) -> FileDigest:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return FileDigest(path.stat().st_size, h.hexdigest())


def write_artifact(out: Path, version: str, files: dict[str, Path],
                   sign: Callable[[bytes], bytes], options: str = "") -> Manifest:
    """Build an artifact at ``out`` from payload ``files`` (the image build does this)."""
    manifest = Manifest(version, {n: file_digest(p) for n, p in files.items()}, options)
    data = manifest.to_json()
    parse_manifest(data)  # never ship what the appliance would refuse
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, blob in ((MANIFEST, data), (SIGNATURE, sign(data))):
            tar.addfile(_info(name, len(blob)), io.BytesIO(blob))
        for name in PAYLOAD:
            with files[name].open("rb") as fh:
                tar.addfile(_info(name, files[name].stat().st_size), fh)
    return manifest


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def describe(manifest: Manifest) -> dict[str, Any]:
    """JSON-friendly summary for `speaker update` output."""
    return {"version": manifest.version, "options": manifest.options,
            "files": {n: {"size": d.size, "sha256": d.sha256}
                      for n, d in sorted(manifest.files.items())}}
