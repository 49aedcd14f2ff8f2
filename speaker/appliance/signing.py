"""Signatures of update artifacts: Ed25519 keys and OpenSSH's ``ssh-keygen -Y``.

The image build signs each artifact's manifest with a private Ed25519 key; the
image carries the public half in ``/etc/edge-speaker/update-signers`` (OpenSSH's
allowed-signers format) and refuses any artifact whose manifest it does not
verify. ``ssh-keygen`` is already in the image (openssh-client) and on every build
host, so no crypto library joins the speaker's dependencies. The namespace
``edge-speaker-update`` keeps a signature made for anything else (an SSH login, a
git commit) from ever passing as an update.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

NAMESPACE = "edge-speaker-update"
IDENTITY = "edge-speaker-update"
SIGNERS = Path("/etc/edge-speaker/update-signers")


class SignatureError(Exception):
    """The signature is missing, malformed or not made by a trusted key."""


class Verifier(Protocol):
    """Checks that ``signature`` is a trusted key's signature of ``data``."""

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return if trusted, raise :class:`SignatureError` otherwise."""


def allowed_signers_line(public_key: str) -> str:
    """The allowed-signers line for one public key (``ssh-ed25519 AAAA... comment``)."""
    fields = public_key.split()
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        raise ValueError("an update signing key must be an ssh-ed25519 public key")
    return f'{IDENTITY} namespaces="{NAMESPACE}" {fields[0]} {fields[1]}\n'


class SshKeygenVerifier:
    """``ssh-keygen -Y verify`` against an allowed-signers file."""

    def __init__(self, signers: Path = SIGNERS) -> None:
        self.signers = signers

    def verify(self, data: bytes, signature: bytes) -> None:
        if not self.signers.exists():
            raise SignatureError(f"no trusted update keys ({self.signers} is missing)")
        with tempfile.TemporaryDirectory(prefix="es-sig-") as tmp:
            sig = Path(tmp) / "manifest.sig"
            sig.write_bytes(signature)
            proc = subprocess.run(
                ["ssh-keygen", "-Y", "verify", "-f", str(self.signers), "-I", IDENTITY,
                 "-n", NAMESPACE, "-s", str(sig)],
                input=data, capture_output=True, check=False, timeout=60)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()
            raise SignatureError(detail.splitlines()[-1] if detail else "not verified")


class SshKeygenSigner:
    """``ssh-keygen -Y sign`` with a private key file (the build host's side)."""

    def __init__(self, key: Path) -> None:
        self.key = key

    def sign(self, data: bytes) -> bytes:
        with tempfile.TemporaryDirectory(prefix="es-sign-") as tmp:
            # ssh-keygen refuses a key file others can read (git checks out 0644)
            key = Path(tmp) / "key"
            key.write_bytes(self.key.read_bytes())
            key.chmod(0o600)
            path = Path(tmp) / "manifest.json"
            path.write_bytes(data)
            subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key),
                            "-n", NAMESPACE, str(path)], check=True, capture_output=True,
                           timeout=60)
            return (Path(tmp) / "manifest.json.sig").read_bytes()
