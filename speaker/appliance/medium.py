"""The config medium: find it, read it, check it, keep the last good copy, activate it.

An operator writes a FAT file system labelled ``ESCONFIG`` (a USB stick or a
partition) on any laptop with up to three files: ``speaker.yaml`` (the speaker
config), ``network.yaml`` (host networking, see :mod:`speaker.appliance.network`)
and ``authorized_keys`` (SSH stays off without it). At every boot
``edge-speaker-config.service`` runs :func:`apply_medium`: the files are checked
exactly as ``speaker config check`` does; a good set replaces the last good copy
on the persistent partition, a bad one is reported (console and journal, priority
err) and the last good copy stays in use.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from speaker.appliance.network import nic_names, parse_network, render
from speaker.config.load import ConfigError, ConfigUnreadableError, parse_text

LABEL = "ESCONFIG"
FILES = ("speaker.yaml", "network.yaml", "authorized_keys")
MAX_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class MediumReport:
    """What one boot did with the medium."""

    found: bool
    errors: tuple[str, ...] = ()
    applied: bool = False
    active: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def find_device(label: str = LABEL, wait: float = 10.0,
                by_label: Path = Path("/dev/disk/by-label")) -> Path | None:
    """The block device labelled ``label``, waiting up to ``wait`` s for udev."""
    deadline = time.monotonic() + wait
    while True:
        dev = by_label / label
        if dev.exists():
            return dev
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.25)


def read_device(dev: Path) -> dict[str, bytes]:
    """Mount ``dev`` read-only for a moment and read the known files."""
    with tempfile.TemporaryDirectory(prefix="esconfig-", dir="/run") as mnt:
        subprocess.run(["mount", "-o", "ro,nosuid,nodev,noexec", str(dev), mnt], check=True,
                       capture_output=True)
        try:
            return read_dir(Path(mnt))
        finally:
            subprocess.run(["umount", mnt], check=False, capture_output=True)


def read_dir(path: Path) -> dict[str, bytes]:
    """The known files present in a directory (case-insensitive names, as FAT is)."""
    names = {p.name.lower(): p for p in path.iterdir() if p.is_file()}
    out = {}
    for name in FILES:
        if name in names:
            data = names[name].read_bytes()[: MAX_FILE + 1]
            out[name] = data
    return out


def check_files(files: dict[str, bytes]) -> list[str]:
    """Every problem in a medium's files, each naming the file and the field."""
    errors: list[str] = []
    if "speaker.yaml" not in files:
        errors.append("speaker.yaml: missing (the medium must carry the speaker config)")
    checks: dict[str, Callable[[str, str], object]] = {
        "speaker.yaml": parse_text, "network.yaml": parse_network}
    for name, data in files.items():
        if len(data) > MAX_FILE:
            errors.append(f"{name}: larger than {MAX_FILE} bytes")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(f"{name}: not UTF-8 text")
            continue
        if name in checks:
            try:
                checks[name](text, name)
            except ConfigUnreadableError as exc:
                errors.append(str(exc))
            except ConfigError as exc:
                errors.extend(f"{name}: {issue}" for issue in exc.issues)
    return errors


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".new")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.chmod(mode)
    tmp.rename(path)


def keep(files: dict[str, bytes], config_dir: Path) -> None:
    """Make ``files`` the last good config (files absent from the medium are removed)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config_dir.chmod(0o755)
    for name in FILES:
        target = config_dir / name
        if name in files:
            _write_atomic(target, files[name], 0o600 if name == "authorized_keys" else 0o644)
        else:
            target.unlink(missing_ok=True)


def activate_network(config_dir: Path, network_dir: Path) -> list[str]:
    """Render the last good network.yaml to ``network_dir``; names of the files written."""
    source = config_dir / "network.yaml"
    if not source.exists():
        return []
    cfg = parse_network(source.read_text(encoding="utf-8"), str(source))
    network_dir.mkdir(parents=True, exist_ok=True)
    for old in network_dir.glob("*-es-*"):
        old.unlink()
    files = render(cfg)
    for name, text in files.items():
        _write_atomic(network_dir / name, text.encode())
    if cfg.hostname:
        Path("/proc/sys/kernel/hostname").write_text(cfg.hostname)
    return sorted(files)


def pending_renames(config_dir: Path, sys_net: Path = Path("/sys/class/net")) -> dict[str, str]:
    """NICs present under another name than network.yaml gives them: current -> wanted."""
    source = config_dir / "network.yaml"
    if not source.exists():
        return {}
    wanted = nic_names(parse_network(source.read_text(encoding="utf-8"), str(source)))
    out = {}
    for link in sys_net.iterdir():
        try:
            mac = (link / "address").read_text().strip().lower()
        except OSError:
            continue
        if mac in wanted and link.name != wanted[mac] and not (link / "master").exists():
            out[link.name] = wanted[mac]
    return out


def apply_medium(config_dir: Path, files: dict[str, bytes] | None) -> MediumReport:
    """Check the medium's files; keep them if good. ``None``: no medium was found."""
    if files is None:
        return MediumReport(found=False, notes=("no config medium; last good config kept",))
    errors = check_files(files)
    if errors:
        return MediumReport(found=True, errors=tuple(errors),
                            notes=("config medium REJECTED; last good config kept",))
    keep(files, config_dir)
    return MediumReport(found=True, applied=True, active=tuple(sorted(files)),
                        notes=("config medium applied",))
