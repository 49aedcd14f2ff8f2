"""A plain Debian 12 server for the Ansible proof: an ext4 root disk plus its kernel and initrd.

One stage, cached under ``$EDGE_SPEAKER_CACHE/ansible`` (default
``/var/cache/edge-speaker/ansible``) in a directory named by a hash of its inputs:

* ``root.raw``: ``mmdebstrap --variant=apt bookworm`` with systemd, openssh-server,
  python3, python3-venv, python3-apt (what ansible's apt module needs on the target),
  Debian's kernel and the packages the appliance role installs (so the role's apt task
  finds them present: the VMs have no path to a mirror), packed as ext4 by
  ``mkfs.ext4 -d`` (no loop device). Docs, locales and the kernel modules no server needs
  are never unpacked (the same dpkg ``path-exclude`` lists the appliance image uses).
* ``vmlinuz`` and ``initrd.img``: the kernel and the initramfs its postinst made
  (``MODULES=list``: virtio and ext4 only, so it is small and quick to build), booted
  by qemu directly (``-kernel/-initrd``).
* ``id_ed25519``: the key root's ``authorized_keys`` holds. A lab key for a VM that
  no network outside the test can reach.

There is no edge-speaker in the image: the role installs it. The VM's addresses come
from the kernel command line (``s3a.addr=eth0=192.0.2.11/24,...``), applied by a small
unit before sshd starts, so one cached disk serves every VM (qemu ``snapshot=on``: each
VM writes to its own throw-away overlay). A cold build takes about two minutes.
Run ``python -m tests.ansible.server_image`` to build and print the paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from images.builder import MIRROR, REPO, SECURITY, SKIP_MODULES, SKIP_PATHS, digest, run

SUITE = "bookworm"
BUILD_FORMAT = "1"  # bump when the recipe below changes in a way the inputs don't show
# What the appliance role's defaults install (appliance_packages), preinstalled.
ROLE_PACKAGES = tuple(yaml.safe_load(
    (REPO / "ansible" / "roles" / "appliance" / "defaults" / "main.yml").read_text(),
)["appliance_packages"])
PACKAGES = (
    "linux-image-amd64", "initramfs-tools", "systemd", "systemd-sysv", "udev",
    "openssh-server", "python3-apt", "procps", "iputils-ping", "curl", *ROLE_PACKAGES,
)
INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4", "crc32c_generic")
DISK_MIB = 2048
NET_SCRIPT = """#!/bin/sh
# s3a.addr=IF=ADDR/LEN[,IF=ADDR/LEN...] s3a.gw=ADDR s3a.host=NAME from the kernel command line
set -e
for word in $(cat /proc/cmdline); do
  case "$word" in
    s3a.host=*) hostname "${word#s3a.host=}" ;;
    s3a.addr=*)
      for item in $(echo "${word#s3a.addr=}" | tr ',' ' '); do
        ip addr add "${item#*=}" dev "${item%%=*}"
        ip link set "${item%%=*}" up
      done ;;
    s3a.gw=*) ip route add default via "${word#s3a.gw=}" ;;
  esac
done
ip link set lo up
"""
NET_UNIT = """[Unit]
Description=Lab addresses from the kernel command line
DefaultDependencies=no
After=systemd-udev-settle.service systemd-udevd.service
Before=network.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/s3a-net

[Install]
WantedBy=multi-user.target
"""


def cache_dir() -> Path:
    path = Path(os.environ.get("EDGE_SPEAKER_CACHE", "/var/cache/edge-speaker")) / "ansible"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True, slots=True)
class ServerImage:
    root: Path
    kernel: Path
    initrd: Path
    key: Path


@contextlib.contextmanager
def _lock(cache: Path) -> Iterator[None]:
    with (cache / ".lock-server").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_server_image(cache: Path | None = None) -> ServerImage:
    """Build (or reuse) the server disk and return it with its kernel, initrd and key."""
    cache = cache or cache_dir()
    key = digest(BUILD_FORMAT, SUITE, MIRROR, SECURITY, *PACKAGES, *SKIP_MODULES, *SKIP_PATHS,
                 *INITRD_MODULES, str(DISK_MIB), NET_SCRIPT, NET_UNIT)
    stage = cache / f"server-{key}"
    image = ServerImage(stage / "root.raw", stage / "vmlinuz", stage / "initrd.img",
                        stage / "id_ed25519")
    if (stage / "done").exists():
        return image
    with _lock(cache):
        if not (stage / "done").exists():
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            _build(cache, stage)
            (stage / "done").write_text("")
    return image


def _build(cache: Path, stage: Path) -> None:
    opts = [f"--dpkgopt=path-exclude={p}" for p in SKIP_PATHS]
    for tree in SKIP_MODULES:
        for prefix in ("/lib", "/usr/lib"):
            suffix = "" if tree.endswith(".ko") else "/*"
            opts.append(f"--dpkgopt=path-exclude={prefix}/modules/*/kernel/{tree}{suffix}")
    with tempfile.TemporaryDirectory(dir=cache) as tmpdir:
        root = Path(tmpdir) / "root"
        modules = " ".join(INITRD_MODULES)
        run(["mmdebstrap", "--variant=apt", "--format=directory",
             "--include=" + ",".join(PACKAGES), *opts,
             "--aptopt=Acquire::Languages \"none\"",
             # before the kernel's postinst builds the initramfs
             "--setup-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" "
             "\"$1/usr/share/initramfs-tools/modules.d\" && echo MODULES=list "
             "> \"$1/etc/initramfs-tools/conf.d/s3a.conf\" && printf '%s\\n' "
             f"{modules} > \"$1/usr/share/initramfs-tools/modules.d/s3a.conf\"",
             SUITE, str(root),
             f"deb {MIRROR} {SUITE} main", f"deb {MIRROR} {SUITE}-updates main",
             f"deb {SECURITY} {SUITE}-security main"])
        _customize(root, stage)
        kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1]
        shutil.copy2(kernel, stage / "vmlinuz")
        shutil.copy2(root / "boot" / kernel.name.replace("vmlinuz", "initrd.img"),
                     stage / "initrd.img")
        with (stage / "root.raw").open("wb") as fh:
            fh.truncate(DISK_MIB << 20)
        run(["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(stage / "root.raw")])


def _customize(root: Path, stage: Path) -> None:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "s3a-lab",
         "-f", str(stage / "id_ed25519")])
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    shutil.copy2(stage / "id_ed25519.pub", ssh / "authorized_keys")
    (ssh / "authorized_keys").chmod(0o600)
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 rw,noatime 0 1\n")
    (root / "etc" / "hostname").write_text("s3a-server\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    script = root / "usr" / "local" / "sbin" / "s3a-net"
    script.write_text(NET_SCRIPT)
    script.chmod(0o755)
    unit = root / "etc" / "systemd" / "system" / "s3a-net.service"
    unit.write_text(NET_UNIT)
    wants = root / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "s3a-net.service").symlink_to("/etc/systemd/system/s3a-net.service")
    # No mirror is reachable from the lab: nothing may try one at boot.
    for unit_name in ("apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer",
                      "fstrim.timer", "systemd-timesyncd.service", "getty@tty1.service",
                      "systemd-networkd-wait-online.service"):
        (root / "etc" / "systemd" / "system" / unit_name).unlink(missing_ok=True)
        (root / "etc" / "systemd" / "system" / unit_name).symlink_to("/dev/null")
    # sshd: no DNS lookups of clients (there is no resolver), quick logins
    conf = root / "etc" / "ssh" / "sshd_config.d" / "s3a.conf"
    conf.write_text("UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n")
    # one fixed id (no first-boot presets on the VMs); lab hosts only
    (root / "etc" / "machine-id").write_text(digest("s3a", str(stage)) * 2 + "\n")
    subprocess.run(["/usr/sbin/chroot", str(root), "passwd", "--lock", "root"], check=True,
                   capture_output=True)


if __name__ == "__main__":
    built = build_server_image()
    print(built.root, built.kernel, built.initrd, built.key, sep="\n")
    sys.exit(0)
