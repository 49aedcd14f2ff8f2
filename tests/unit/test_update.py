"""`speaker update`: slot selection, boot entries, artifact verification, health gate.

No VM: the slots' partitions are plain files behind the SlotDevices seam, the ESP is
a directory, and signatures are real Ed25519 signatures made with the repository's
test key by OpenSSH's ssh-keygen (the same code the appliance runs).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import IO, Any

import pytest

from speaker.appliance.artifact import (
    MANIFEST,
    SIGNATURE,
    ArtifactError,
    parse_manifest,
    write_artifact,
)
from speaker.appliance.gate import verdict, wait_for_health
from speaker.appliance.signing import (
    SignatureError,
    SshKeygenSigner,
    SshKeygenVerifier,
    allowed_signers_line,
)
from speaker.appliance.slots import (
    BootEntry,
    UpdateRefusedError,
    entry_name,
    next_boot,
    parse_entry,
    plan_update,
    running_slot,
    slot_report,
)
from speaker.appliance.update import apply_update, read_entries
from speaker.cli.update_cmd import render_image

REPO = Path(__file__).resolve().parents[2]
TEST_KEY = REPO / "images" / "keys" / "test-update-key"
SLOT_BYTES = 1 << 20
CMDLINE_A = "initrd=\\slot-a\\initrd.img root=PARTLABEL=root-a ro rootfstype=squashfs"

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                reason="ssh-keygen (openssh-client) is not installed")


class FileSlots:
    """Slot partitions as files of a fixed size (the SlotDevices seam)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for slot in ("a", "b"):
            (root / f"root-{slot}").write_bytes(b"\0" * SLOT_BYTES)

    def size(self, slot: str) -> int:
        return (self.root / f"root-{slot}").stat().st_size

    def open_write(self, slot: str) -> IO[bytes]:
        return (self.root / f"root-{slot}").open("r+b")

    def open_read(self, slot: str) -> IO[bytes]:
        return (self.root / f"root-{slot}").open("rb")


class AcceptAll:
    def verify(self, data: bytes, signature: bytes) -> None:
        pass


@pytest.fixture
def signers(tmp_path: Path) -> Path:
    path = tmp_path / "update-signers"
    path.write_text(allowed_signers_line((TEST_KEY.with_suffix(".pub")).read_text()))
    return path


@pytest.fixture
def payload(tmp_path: Path) -> dict[str, Path]:
    files = {"vmlinuz": b"kernel v2", "initrd.img": b"initrd v2", "root.sqfs": b"hsqs" * 4096}
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / name
        out[name].write_bytes(data)
    return out


def make_artifact(tmp_path: Path, payload: dict[str, Path], version: str = "2.0",
                  key: Path = TEST_KEY) -> Path:
    out = tmp_path / f"update-{version}.tar"
    write_artifact(out, version, payload, SshKeygenSigner(key).sign, options="ro quiet")
    return out


@pytest.fixture
def esp(tmp_path: Path) -> Path:
    """An ESP as the image build makes it: slot A's entry, good."""
    esp = tmp_path / "esp"
    (esp / "loader" / "entries").mkdir(parents=True)
    (esp / "slot-a").mkdir()
    (esp / "loader" / "entries" / "edge-speaker-1-a.conf").write_text(
        "title edge-speaker 1.0 (slot A)\nversion 1.0\nlinux /slot-a/vmlinuz\n"
        "options root=PARTLABEL=root-a ro\n")
    return esp


def apply(stream: IO[bytes], esp: Path, slots: FileSlots, verifier: Any,
          cmdline: str = CMDLINE_A, **kw: Any) -> Any:
    return apply_update(stream, esp=esp, cmdline=cmdline, devices=slots, verifier=verifier,
                        **kw)


# -- boot entries and slot selection (pure) ------------------------------------------------

def test_entry_names_carry_the_boot_counter() -> None:
    assert entry_name(2, "b", 1) == "edge-speaker-2-b+1-0.conf"
    assert entry_name(1, "a", None) == "edge-speaker-1-a.conf"
    tried = parse_entry("edge-speaker-2-b+0-1.conf", "version 2.0\n")
    assert tried is not None
    assert (tried.generation, tried.slot, tried.version, tried.tries_left, tried.state) == (
        2, "b", "2.0", 0, "bad")
    assert parse_entry("edge-speaker-3-a+2-1.conf", "").state == "trial"  # type: ignore[union-attr]
    assert parse_entry("edge-speaker-3-a.conf", "").state == "good"  # type: ignore[union-attr]
    assert parse_entry("debian-6.1.conf", "") is None
    assert parse_entry("edge-speaker-3-c.conf", "") is None


def test_running_slot_comes_from_the_kernel_command_line() -> None:
    assert running_slot(CMDLINE_A) == "a"
    assert running_slot("root=PARTLABEL=root-b ro") == "b"
    assert running_slot("root=/dev/sda1") is None


def _e(gen: int, slot: str, left: int | None, version: str = "") -> BootEntry:
    return BootEntry(entry_name(gen, slot, left), gen, slot, version or f"{gen}.0", left)


def test_next_boot_is_the_newest_entry_that_is_not_bad() -> None:
    good_a, trial_b = _e(1, "a", None), _e(2, "b", 1)
    assert next_boot([good_a, trial_b]) == trial_b  # the update is tried
    bad_b = _e(2, "b", 0)
    assert next_boot([good_a, bad_b]) == good_a  # it failed: back to slot A by itself
    assert next_boot([good_a, _e(2, "b", None)]).slot == "b"  # type: ignore[union-attr]
    assert next_boot([]) is None


def test_the_update_goes_to_the_inactive_slot_with_a_new_generation() -> None:
    plan = plan_update("a", [_e(1, "a", None)], tries=1)
    assert (plan.slot, plan.generation, plan.entry, plan.replaces) == (
        "b", 2, "edge-speaker-2-b+1-0.conf", ())
    # running B after an update: A (the fallback) is replaced, never B
    plan = plan_update("b", [_e(1, "a", None), _e(2, "b", None)], tries=3)
    assert (plan.slot, plan.entry, plan.replaces) == (
        "a", "edge-speaker-3-a+3-0.conf", ("edge-speaker-1-a.conf",))


def test_an_update_is_refused_while_the_running_slot_is_on_trial() -> None:
    entries = [_e(1, "a", None), _e(2, "b", 0)]  # booted B, not yet blessed
    with pytest.raises(UpdateRefusedError, match="still on trial"):
        plan_update("b", entries, tries=1)
    assert plan_update("b", entries, tries=1, force=True).slot == "a"
    with pytest.raises(UpdateRefusedError, match="running slot"):
        plan_update(None, entries, tries=1)
    with pytest.raises(UpdateRefusedError, match="--tries"):
        plan_update("a", entries[:1], tries=0)


def test_slot_report_after_a_rollback() -> None:
    doc = slot_report("a", "1.0", [_e(1, "a", None), _e(2, "b", 0, "2.0-broken")])
    assert doc["running"] == {"slot": "a", "version": "1.0"}
    assert doc["next_boot"] == {"slot": "a", "version": "1.0"}
    assert doc["staged"] is None
    slots: Any = doc["slots"]
    assert slots["b"]["state"] == "bad"
    assert slots["b"]["version"] == "2.0-broken"
    text = "\n".join(render_image(doc))
    assert "slot b: 2.0-broken bad" in text
    assert "slot a: 1.0 good (running)" in text


def test_slot_report_with_a_staged_update_and_on_trial() -> None:
    doc = slot_report("a", "1.0", [_e(1, "a", None), _e(2, "b", 1)])
    assert doc["staged"] == {"slot": "b", "version": "2.0"}
    trial = slot_report("b", "2.0", [_e(1, "a", None), _e(2, "b", 0)])
    assert trial["slots"]["b"]["state"] == "on-trial"  # type: ignore[index]
    assert trial["next_boot"] == {"slot": "a", "version": "1.0"}  # not blessed yet


# -- artifacts: signature, checksums, refusal -----------------------------------------------

def test_apply_writes_the_inactive_slot_and_a_counted_entry(
        tmp_path: Path, esp: Path, payload: dict[str, Path], signers: Path) -> None:
    artifact = make_artifact(tmp_path, payload)
    slots = FileSlots(tmp_path)
    with artifact.open("rb") as fh:
        done = apply(fh, esp, slots, SshKeygenVerifier(signers), tries=2)
    assert done.plan.slot == "b"
    assert done.manifest.version == "2.0"
    root = payload["root.sqfs"].read_bytes()
    assert (tmp_path / "root-b").read_bytes()[:len(root)] == root
    assert (tmp_path / "root-a").read_bytes() == b"\0" * SLOT_BYTES  # running slot untouched
    assert (esp / "slot-b" / "vmlinuz").read_bytes() == b"kernel v2"
    entry = (esp / "loader" / "entries" / "edge-speaker-2-b+2-0.conf").read_text()
    assert "options root=PARTLABEL=root-b ro quiet" in entry
    assert "version 2.0" in entry
    assert "linux /slot-b/vmlinuz" in entry
    assert next_boot(read_entries(esp / "loader" / "entries")).slot == "b"  # type: ignore[union-attr]


def test_apply_from_a_stream_like_stdin_or_http(
        tmp_path: Path, esp: Path, payload: dict[str, Path]) -> None:
    data = make_artifact(tmp_path, payload).read_bytes()

    class OneWay(io.RawIOBase):  # no seek, short reads: what a socket gives
        def __init__(self) -> None:
            self.pos = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf: Any) -> int:
            n = min(len(buf), 1000, len(data) - self.pos)
            buf[:n] = data[self.pos:self.pos + n]
            self.pos += n
            return n

    done = apply(io.BufferedReader(OneWay()), esp, FileSlots(tmp_path), AcceptAll())
    assert done.plan.slot == "b"


def test_a_wrong_key_is_refused_before_anything_is_written(
        tmp_path: Path, esp: Path, payload: dict[str, Path], signers: Path) -> None:
    other = tmp_path / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    artifact = make_artifact(tmp_path, payload, key=other)
    slots = FileSlots(tmp_path)
    with artifact.open("rb") as fh, pytest.raises(ArtifactError, match="signature refused"):
        apply(fh, esp, slots, SshKeygenVerifier(signers))
    assert (tmp_path / "root-b").read_bytes() == b"\0" * SLOT_BYTES
    assert [p.name for p in (esp / "loader" / "entries").iterdir()] == [
        "edge-speaker-1-a.conf"]


def test_a_tampered_manifest_fails_the_signature(
        tmp_path: Path, esp: Path, payload: dict[str, Path], signers: Path) -> None:
    artifact = make_artifact(tmp_path, payload)
    members = _members(artifact)
    members[MANIFEST] = members[MANIFEST].replace(b'"2.0"', b'"9.9"')
    with pytest.raises(ArtifactError, match="signature refused"):
        apply(_tar(members), esp, FileSlots(tmp_path), SshKeygenVerifier(signers))


def test_a_corrupt_payload_is_refused_and_nothing_boots_it(
        tmp_path: Path, esp: Path, payload: dict[str, Path], signers: Path) -> None:
    members = _members(make_artifact(tmp_path, payload))
    root = bytearray(members["root.sqfs"])
    root[100] ^= 0xFF
    members["root.sqfs"] = bytes(root)
    with pytest.raises(ArtifactError, match=r"checksum mismatch for root\.sqfs"):
        apply(_tar(members), esp, FileSlots(tmp_path), SshKeygenVerifier(signers))
    names = [p.name for p in (esp / "loader" / "entries").iterdir()]
    assert names == ["edge-speaker-1-a.conf"]  # no entry for the half-written slot
    assert not (esp / "slot-b" / "vmlinuz").exists()


def test_a_truncated_or_foreign_artifact_is_refused(
        tmp_path: Path, esp: Path, payload: dict[str, Path]) -> None:
    data = make_artifact(tmp_path, payload).read_bytes()
    with pytest.raises(ArtifactError, match=r"truncated|corrupt"):
        apply(io.BytesIO(data[:len(data) // 2]), esp, FileSlots(tmp_path), AcceptAll())
    with pytest.raises(ArtifactError, match="not an update artifact"):
        apply(io.BytesIO(b"<html>404</html>" * 64), esp, FileSlots(tmp_path), AcceptAll())
    members = _members(make_artifact(tmp_path, payload))
    del members["initrd.img"]
    with pytest.raises(ArtifactError, match=r"initrd\.img missing"):
        apply(_tar(members), esp, FileSlots(tmp_path), AcceptAll())
    members = _members(make_artifact(tmp_path, payload))
    unsigned = {k: v for k, v in members.items() if k != SIGNATURE}
    with pytest.raises(ArtifactError, match="must start with"):
        apply(_tar(unsigned), esp, FileSlots(tmp_path), AcceptAll())


def test_a_root_bigger_than_the_slot_is_refused(
        tmp_path: Path, esp: Path, payload: dict[str, Path]) -> None:
    payload["root.sqfs"].write_bytes(b"x" * (SLOT_BYTES + 1))
    artifact = make_artifact(tmp_path, payload)
    with artifact.open("rb") as fh, pytest.raises(ArtifactError, match="holds only"):
        apply(fh, esp, FileSlots(tmp_path), AcceptAll())


def test_manifest_checks() -> None:
    good = {"format": 1, "name": "edge-speaker", "arch": "x86-64", "version": "2.0",
            "files": {n: {"size": 1, "sha256": "0" * 64}
                      for n in ("vmlinuz", "initrd.img", "root.sqfs")}}
    assert parse_manifest(json.dumps(good).encode()).version == "2.0"
    for change, match in (({"format": 2}, "format"), ({"arch": "arm64"}, "not edge-speaker"),
                          ({"version": "a\nb"}, "bad version"), ({"files": {}}, "exactly")):
        with pytest.raises(ArtifactError, match=match):
            parse_manifest(json.dumps({**good, **change}).encode())
    with pytest.raises(ArtifactError, match="not JSON"):
        parse_manifest(b"{")


def test_signatures_are_bound_to_the_update_namespace(tmp_path: Path, signers: Path) -> None:
    data = b"manifest"
    sig = SshKeygenSigner(TEST_KEY).sign(data)
    SshKeygenVerifier(signers).verify(data, sig)
    with pytest.raises(SignatureError):
        SshKeygenVerifier(signers).verify(b"other", sig)
    # a signature of the same key for another purpose (namespace) never passes
    (tmp_path / "m").write_bytes(data)
    key = tmp_path / "k"
    key.write_bytes(TEST_KEY.read_bytes())
    key.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", "git",
                    str(tmp_path / "m")], check=True)
    with pytest.raises(SignatureError):
        SshKeygenVerifier(signers).verify(data, (tmp_path / "m.sig").read_bytes())
    with pytest.raises(SignatureError, match="missing"):
        SshKeygenVerifier(tmp_path / "nope").verify(data, sig)
    with pytest.raises(ValueError, match="ssh-ed25519"):
        allowed_signers_line("ssh-rsa AAAA")


def _members(artifact: Path) -> dict[str, bytes]:
    out = {}
    with tarfile.open(artifact) as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            assert fh is not None
            out[m.name] = fh.read()
    return out


def _tar(members: dict[str, bytes]) -> IO[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


# -- the health gate --------------------------------------------------------------------

def _status(ready: bool = True, peer: str = "up", announced: bool = True) -> dict[str, Any]:
    return {"ready": ready, "appliance": {"healthy": True, "reasons": []},
            "peers": [{"name": "r1", "state": peer}],
            "vips": [{"vip": "203.0.113.10",
                      "bgp": {"desired": True, "announced": announced},
                      "l2": {"desired": False, "owned": False}}]}


def test_gate_verdict() -> None:
    assert verdict(_status()) == (True, "ready, announcing 1 VIP(s)")
    assert verdict(_status(ready=False)) == (False, "not_ready")
    assert verdict(_status(peer="connect")) == (False, "no_bgp_session_up")
    assert verdict(_status(announced=False)) == (False, "not_announcing:bgp:203.0.113.10")
    standby = _status()
    standby["vips"][0]["bgp"] = {"desired": False, "announced": False}
    assert verdict(standby)[0]  # a standby that announces nothing passes on readiness


class FakeProbe:
    def __init__(self, states: list[str], docs: list[dict[str, Any] | None]) -> None:
        self.states, self.docs = states, docs

    def unit_state(self) -> str:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def status(self) -> dict[str, Any] | None:
        return self.docs.pop(0) if len(self.docs) > 1 else self.docs[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_gate_passes_once_announcing() -> None:
    clock = FakeClock()
    probe = FakeProbe(["activating", "active", "active"],
                      [_status(peer="connect"), _status()])
    said: list[str] = []
    result = wait_for_health(probe, 600, clock=clock, sleep=clock.sleep, say=said.append)
    assert result.passed
    assert result.waited == 4.0
    assert said == ["waiting: edge-speaker.service is activating",
                    "waiting: no_bgp_session_up"]


def test_gate_fails_at_once_when_the_speaker_failed_and_on_timeout() -> None:
    clock = FakeClock()
    result = wait_for_health(FakeProbe(["activating", "failed"], [None]), 600, clock=clock,
                             sleep=clock.sleep)
    assert not result.passed
    assert result.reason == "edge-speaker.service failed"
    assert result.waited == 2.0
    clock = FakeClock()
    result = wait_for_health(FakeProbe(["active"], [_status(announced=False)]), 30,
                             clock=clock, sleep=clock.sleep)
    assert not result.passed
    assert "timed out after 30 s (not_announcing" in result.reason
