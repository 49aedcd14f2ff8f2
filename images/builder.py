"""Build the appliance disk image: a raw GPT disk (UEFI, A/B root slots, data partition).

Stages, each cached under ``$EDGE_SPEAKER_CACHE/images`` (default
``/var/cache/edge-speaker/images``) in a file named by a hash of its inputs:

* ``base-<hash>.tar``: ``mmdebstrap --variant=apt bookworm`` with the kernel,
  systemd, sshd, python3 and friends (:data:`PACKAGES`); docs, man pages,
  locales and the kernel modules no server appliance needs are never unpacked
  (dpkg ``path-exclude``), so the kernel's own initramfs is small too.
* ``deps-<hash>.tar``: ``/opt/edge-speaker/venv``, a virtualenv made by the
  image's python3 in a chroot, with the locked runtime wheels (downloaded or
  built on the host; pip runs inside the chroot with ``--no-index``).
* ``speaker-<hash>.whl``: the wheel of this checkout.

The final step (always redone when any input changed, ~20 s): unpack base and
deps, install the speaker wheel offline, lay the overlay (``images/rootfs``,
``images/systemd``, the sysctl table), pack the root as squashfs (slot A), an
ESP with systemd-boot, the kernel and initrd, a data partition seeded with
``/var``, and join them with ``systemd-repart`` (``CopyBlocks=``, no loop
device). Output: ``edge-speaker-<hash>.raw`` and ``.raw.zst`` in the cache,
plus a ``latest`` symlink pair. Run ``images/build`` (root).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from dataplane.sysctl import SYSCTLS  # noqa: E402
from speaker.appliance.artifact import write_artifact  # noqa: E402
from speaker.appliance.signing import SshKeygenSigner, allowed_signers_line  # noqa: E402
from speaker.appliance.slots import entry_name, entry_text  # noqa: E402
from tests.vm.image import runtime_requirements  # noqa: E402

SUITE = "bookworm"
MIRROR = os.environ.get("EDGE_SPEAKER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("EDGE_SPEAKER_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
BUILD_FORMAT = "1"  # bump when a stage's recipe changes in a way its inputs don't show
PACKAGES = (
    "linux-image-amd64", "initramfs-tools", "zstd", "systemd", "systemd-sysv", "udev", "dbus",
    "systemd-timesyncd", "systemd-boot-efi", "iproute2", "kmod", "ipvsadm", "python3",
    "openssh-server", "libpcap0.8", "procps", "e2fsprogs", "dosfstools",
    # systemd-bless-boot (+ its generator): marks a counted boot entry good
    "systemd-boot",
)
# Kernel module trees a load-balancer appliance never needs (GPUs, sound, wireless...).
SKIP_MODULES = (
    "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/bluetooth",
    "drivers/staging", "drivers/infiniband", "drivers/iio", "drivers/isdn", "drivers/net/can",
    "drivers/input/touchscreen", "drivers/input/joystick", "drivers/comedi", "drivers/mmc",
    "drivers/thunderbolt", "drivers/net/usb", "drivers/usb/gadget", "drivers/usb/serial",
    "drivers/misc", "sound", "net/wireless", "net/mac80211", "net/bluetooth", "fs/nfs",
    "fs/nfsd", "fs/ocfs2", "fs/smb", "fs/f2fs", "fs/xfs", "fs/btrfs", "fs/gfs2", "fs/ceph",
    "net/sunrpc", "drivers/target", "drivers/mtd", "lib/test_bpf.ko",
)
SKIP_PATHS = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*",
              "/usr/share/info/*", "/usr/share/lintian/*")
# Modules the initramfs must carry besides MODULES=most's (the root is squashfs).
INITRD_MODULES = ("squashfs", "virtio_blk", "virtio_pci", "nvme", "ahci", "sd_mod")
ESP_MIB, SLOT_MIB, DATA_MIB = 128, 320, 64
VENV = "/opt/edge-speaker/venv"
# panic=10: a kernel panic reboots (and a counted boot then counts down) instead of hanging
KERNEL_OPTIONS = ("ro rootfstype=squashfs console=tty0 console=ttyS0,115200 "
                  "systemd.gpt_auto=0 systemd.show_status=auto loglevel=4 panic=10")
# The update signing key: a site sets EDGE_SPEAKER_UPDATE_KEY to its own private
# Ed25519 key (the public half beside it as KEY.pub); the default is the repository's
# TEST key, whose private half is public: fine for tests, never for a site.
TEST_KEY = HERE / "keys" / "test-update-key"
UPDATE_KEY = Path(os.environ.get("EDGE_SPEAKER_UPDATE_KEY", str(TEST_KEY)))
BROKEN_DROPIN = """# TEST ONLY (images/build --broken-for-test): edge-speaker fails to start, so the
# health gate fails and the appliance must roll back to the previous slot by itself.
[Service]
ExecStart=
ExecStart=/bin/sh -c 'echo "edge-speaker: deliberately broken test image" >&2; exit 1'
"""


@dataclass(frozen=True, slots=True)
class Variant:
    """What differs between builds of one checkout: the version string, and a
    deliberately broken speaker for the rollback test."""

    version: str
    broken: bool = False


def default_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])
REPART = {
    "10-esp.conf": f"[Partition]\nType=esp\nLabel=ESP\nCopyBlocks={{esp}}\n"
                   f"SizeMinBytes={ESP_MIB}M\nSizeMaxBytes={ESP_MIB}M\n",
    "20-root-a.conf": f"[Partition]\nType=root-x86-64\nLabel=root-a\nCopyBlocks={{root}}\n"
                      f"SizeMinBytes={SLOT_MIB}M\nSizeMaxBytes={SLOT_MIB}M\n",
    "30-root-b.conf": f"[Partition]\nType=root-x86-64\nLabel=root-b\n"
                      f"SizeMinBytes={SLOT_MIB}M\nSizeMaxBytes={SLOT_MIB}M\n",
    "40-data.conf": f"[Partition]\nType=linux-generic\nLabel=esdata\nCopyBlocks={{data}}\n"
                    f"SizeMinBytes={DATA_MIB}M\nSizeMaxBytes={DATA_MIB}M\n",
}


def log(msg: str) -> None:
    print(f"images/build: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    path = Path(os.environ.get("EDGE_SPEAKER_CACHE", "/var/cache/edge-speaker")) / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256(BUILD_FORMAT.encode())
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(root: Path) -> str:
    """Hash of every file's relative path, mode and content under ``root``."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_symlink():
            h.update(os.readlink(path).encode())
        else:
            h.update(oct(path.stat().st_mode).encode() + path.read_bytes())
    return h.hexdigest()


def run(argv: list[str], **kwargs: object) -> str:
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed ({proc.returncode}):\n"
                           f"{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
    return str(proc.stdout)


def atomic(out: Path) -> Path:
    return out.with_name(out.name + f".tmp{os.getpid()}")


# -- base -----------------------------------------------------------------------

def build_base(cache: Path) -> Path:
    key = digest(SUITE, MIRROR, SECURITY, *PACKAGES, *SKIP_MODULES, *SKIP_PATHS,
                 *INITRD_MODULES)
    out = cache / f"base-{key}.tar"
    if out.exists():
        return out
    log(f"base: mmdebstrap {SUITE} ({len(PACKAGES)} packages), about 2 minutes")
    opts = [f"--dpkgopt=path-exclude={p}" for p in SKIP_PATHS]
    for tree in SKIP_MODULES:
        for prefix in ("/lib", "/usr/lib"):
            suffix = "" if tree.endswith(".ko") else "/*"
            opts.append(f"--dpkgopt=path-exclude={prefix}/modules/*/kernel/{tree}{suffix}")
    tmp = atomic(out)
    run(["mmdebstrap", "--variant=apt", "--format=tar", "--include=" + ",".join(PACKAGES), *opts,
         "--aptopt=Acquire::Languages \"none\"",
         # before the kernel's postinst builds the initramfs (not a conffile: no prompt)
         "--setup-hook=mkdir -p \"$1/usr/share/initramfs-tools/modules.d\" && printf '%s\\n' "
         + " ".join(INITRD_MODULES)
         + " > \"$1/usr/share/initramfs-tools/modules.d/edge-speaker.conf\"",
         SUITE, str(tmp),
         f"deb {MIRROR} {SUITE} main", f"deb {MIRROR} {SUITE}-updates main",
         f"deb {SECURITY} {SUITE}-security main"])
    tmp.rename(out)
    return out


# -- python dependencies ----------------------------------------------------------

def _pip_host() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def _chroot_pip(root: Path, *args: str) -> None:
    """Run pip (the host's copy of the pure-Python package) with the image's python."""
    pip_src = Path(__import__("pip").__file__).parent
    shutil.copytree(pip_src, root / "tmp" / "pipsrc" / "pip", dirs_exist_ok=True)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": "/tmp/pipsrc", "HOME": "/root"}
    run(["/usr/sbin/chroot", str(root), f"{VENV}/bin/python", "-m", "pip",
         "--disable-pip-version-check", "-q", *args], env=env)
    shutil.rmtree(root / "tmp" / "pipsrc")


def build_deps(cache: Path, base: Path) -> Path:
    reqs = runtime_requirements()
    out = cache / f"deps-{digest(base.name, *reqs)}.tar"
    if out.exists():
        return out
    log(f"deps: virtualenv with {len(reqs)} locked wheels")
    wheels = cache / "wheels"
    wheels.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "requirements.txt").write_text("\n".join(reqs) + "\n")
        # `pip wheel` takes a registry's wheel as is and builds one where there is
        # only an sdist (exabgp 4.2); the chroot then installs with --no-index.
        run([*_pip_host(), "wheel", "--no-deps", "-w", str(wheels),
             "-r", str(tmp / "requirements.txt")])
        root = tmp / "root"
        root.mkdir()
        run(["tar", "-xf", str(base), "-C", str(root)])
        run(["/usr/sbin/chroot", str(root), "python3", "-m", "venv", "--without-pip", VENV])
        shutil.copytree(wheels, root / "tmp" / "wheels")
        shutil.copy2(tmp / "requirements.txt", root / "tmp" / "requirements.txt")
        _chroot_pip(root, "install", "--no-index", "--no-deps", "--find-links", "/tmp/wheels",
                    "-r", "/tmp/requirements.txt")
        tmp_out = atomic(out)
        run(["tar", "-cf", str(tmp_out), "-C", str(root), VENV.lstrip("/")])
        tmp_out.rename(out)
    return out


def build_speaker_wheel(cache: Path) -> Path:
    sources = [REPO / "pyproject.toml", REPO / "README.md"]
    for pkg in ("speaker", "dataplane"):
        sources += sorted(p for p in (REPO / pkg).rglob("*") if p.is_file()
                          and "__pycache__" not in p.parts)
    key = digest(*(str(p.relative_to(REPO)).encode() + p.read_bytes() for p in sources))
    out_dir = cache / f"speaker-{key}"
    found = list(out_dir.glob("*.whl")) if out_dir.exists() else []
    if found:
        return found[0]
    log("speaker: wheel of this checkout")
    with tempfile.TemporaryDirectory(dir=cache) as tmpdir:
        run([*_pip_host(), "wheel", "--no-deps", "-w", tmpdir, str(REPO)])
        out_dir.mkdir(exist_ok=True)
        wheel = next(Path(tmpdir).glob("*.whl"))
        shutil.move(wheel, out_dir / wheel.name)
    return next(out_dir.glob("*.whl"))


# -- assembly -----------------------------------------------------------------------

def sysctl_conf() -> str:
    """The boot-time baseline: the entries every forwarding config wants. Per-interface
    entries and those that depend on the config (DR/tunnel ARP rules, sync, sloppy
    modes, IPv6 forwarding) are the daemon's to set (ReadWritePaths=/proc/sys/net)."""
    lines = ["# edge-speaker: the baseline of dataplane/sysctl.py's table (images/build);",
             "# the daemon sets the config-dependent rest at start and on reload"]
    for entry in SYSCTLS:
        if "{" in entry.name or not ({"nat"} <= set(entry.modes)):
            continue
        lines += [f"# {entry.reason}", f"{entry.name} = {entry.value}"]
    return "\n".join(lines) + "\n"


OPERATOR_DOCS = ((("completion", "bash"), "usr/share/bash-completion/completions/speaker"),
                 (("completion", "zsh"), "usr/share/zsh/vendor-completions/_speaker"),
                 (("man",), "usr/local/share/man/man1/speaker.1"))
"""Generated from the CLI of this checkout (the code the image carries); /usr/local for
the man page because the image drops /usr/share/man."""


def _operator_docs(root: Path) -> None:
    """Shell completion and the man page, as the Ansible role installs them."""
    for args, rel in OPERATOR_DOCS:
        text = run([sys.executable, "-m", "speaker", *args], cwd=str(HERE.parent))
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _overlay(root: Path, variant: Variant) -> None:
    """Appliance files: rootfs overlay, units, sysctls, and what a read-only root needs."""
    shutil.copytree(HERE / "rootfs", root, dirs_exist_ok=True, symlinks=True)
    (root / "efi").mkdir(exist_ok=True)  # the ESP (fstab): boot entries, bless-boot
    os_release = root / "usr" / "lib" / "os-release"
    os_release.write_text(os_release.read_text().rstrip("\n")
                          + f'\nIMAGE_ID=edge-speaker\nIMAGE_VERSION="{variant.version}"\n')
    units = root / "etc" / "systemd" / "system"
    for unit in (HERE / "systemd").iterdir():
        shutil.copy2(unit, units / unit.name)
    (root / "etc" / "sysctl.d" / "90-edge-speaker.conf").write_text(sysctl_conf())
    _operator_docs(root)
    if variant.broken:
        dropin = units / "edge-speaker.service.d"
        dropin.mkdir(exist_ok=True)
        (dropin / "10-broken-for-test.conf").write_text(BROKEN_DROPIN)
    for target, unit in (("multi-user.target.wants", "edge-speaker.service"),
                         ("sysinit.target.wants", "edge-speaker-config.service"),
                         ("boot-complete.target.requires", "edge-speaker-health.service")):
        link = units / target / unit
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(f"/etc/systemd/system/{unit}")
    for unit in ("systemd-networkd.service", "systemd-timesyncd.service"):
        run(["/usr/sbin/chroot", str(root), "systemctl", "enable", unit])
    # sshd: off unless the config medium brings keys (edge-speaker-config starts it).
    run(["/usr/sbin/chroot", str(root), "systemctl", "disable", "ssh.service"])
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()  # never ship host keys: each appliance makes its own on first boot
    run(["/usr/sbin/chroot", str(root), "passwd", "--lock", "root"])
    run(["/usr/sbin/chroot", str(root), "useradd", "--system", "--no-create-home", "--home-dir",
         "/var/lib/edge-speaker", "--shell", "/usr/sbin/nologin", "edge-speaker"])
    (root / "etc" / "machine-id").write_text("")
    (root / "etc" / "hostname").write_text("edge-speaker\n")
    conf = root / "etc" / "edge-speaker"
    conf.mkdir(exist_ok=True)
    link = conf / "speaker.yaml"
    link.unlink(missing_ok=True)
    link.symlink_to("/var/lib/edge-speaker-config/speaker.yaml")
    (conf / "update-signers").write_text(_signers())
    for rel in ("var/cache/apt", "var/lib/apt/lists", "var/log/apt", "var/cache/debconf"):
        shutil.rmtree(root / rel, ignore_errors=True)
        (root / rel).mkdir(parents=True, exist_ok=True)


def _signers() -> str:
    """The image's trusted update keys: the public half of the signing key."""
    pub = UPDATE_KEY.with_name(UPDATE_KEY.name + ".pub")
    return ("# edge-speaker: keys whose signature `speaker update apply` accepts "
            "(OpenSSH allowed-signers)\n" + allowed_signers_line(pub.read_text()))


def _kernel(root: Path) -> tuple[Path, Path]:
    kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1]
    return kernel, root / "boot" / kernel.name.replace("vmlinuz", "initrd.img")


def _esp(root: Path, out: Path, variant: Variant) -> None:
    kernel, initrd = _kernel(root)
    run(["mkfs.vfat", "-F", "32", "-n", "ESP", "-C", str(out), str(ESP_MIB * 1024)])
    efi = root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi"
    with tempfile.TemporaryDirectory() as tmpdir:
        tree = Path(tmpdir)
        (tree / "EFI/BOOT").mkdir(parents=True)
        shutil.copy2(efi, tree / "EFI/BOOT/BOOTX64.EFI")
        (tree / "EFI/systemd").mkdir(parents=True)
        shutil.copy2(efi, tree / "EFI/systemd/systemd-bootx64.efi")
        (tree / "loader/entries").mkdir(parents=True)
        # the newest entry that is not bad boots (see speaker/appliance/slots.py)
        (tree / "loader/loader.conf").write_text("default edge-speaker-*\ntimeout 0\n"
                                                 "editor no\nconsole-mode keep\n")
        (tree / "slot-a").mkdir()
        shutil.copy2(kernel, tree / "slot-a/vmlinuz")
        shutil.copy2(initrd, tree / "slot-a/initrd.img")
        (tree / "loader/entries" / entry_name(1, "a", None)).write_text(
            entry_text("a", variant.version, KERNEL_OPTIONS))
        for name in ("EFI", "loader", "slot-a"):
            run(["mcopy", "-s", "-i", str(out), str(tree / name), "::/"])


def _data(root: Path, out: Path) -> None:
    """The persistent partition, mounted at /var, seeded with the image's /var."""
    with out.open("wb") as fh:
        fh.truncate(DATA_MIB << 20)
    run(["mkfs.ext4", "-q", "-L", "esdata", "-d", str(root / "var"), str(out)])


@dataclass(frozen=True, slots=True)
class Image:
    raw: Path
    compressed: Path
    update: Path
    """The update artifact of the same build (``speaker update apply``)."""
    key: str
    version: str


def assemble(cache: Path, base: Path, deps: Path, wheel: Path, variant: Variant,
             disk: bool = True) -> Image:
    key = digest(base.name, deps.name, wheel.parent.name, wheel.name,
                 tree_digest(HERE / "rootfs"), tree_digest(HERE / "systemd"), sysctl_conf(),
                 KERNEL_OPTIONS, json.dumps(REPART), (HERE / "builder.py").read_bytes(),
                 variant.version, str(variant.broken), _signers())
    raw = cache / f"edge-speaker-{key}.raw"
    zst = raw.with_name(raw.name + ".zst")
    update = cache / f"edge-speaker-{key}.update.tar"
    image = Image(raw, zst, update, key, variant.version)
    if update.exists() and (not disk or (raw.exists() and zst.exists())):
        return image
    log(f"assemble {variant.version}{' (BROKEN, for tests)' if variant.broken else ''}: "
        f"root, update artifact{', ESP, data, GPT' if disk else ''}")
    with tempfile.TemporaryDirectory(dir=cache) as tmpdir:
        tmp = Path(tmpdir)
        root = tmp / "root"
        root.mkdir()
        run(["tar", "-xf", str(base), "-C", str(root)])
        run(["tar", "-xf", str(deps), "-C", str(root)])
        shutil.copy2(wheel, root / "tmp" / wheel.name)
        _chroot_pip(root, "install", "--no-index", "--no-deps", f"/tmp/{wheel.name}")
        (root / "tmp" / wheel.name).unlink()
        (root / "usr/local/bin/speaker").symlink_to(f"{VENV}/bin/speaker")
        _overlay(root, variant)
        run(["mksquashfs", str(root), str(tmp / "root.sqfs"), "-comp", "zstd",
             "-Xcompression-level", "6", "-noappend", "-quiet", "-no-progress"])
        size = (tmp / "root.sqfs").stat().st_size
        if size > SLOT_MIB << 20:
            raise RuntimeError(f"root is {size >> 20} MiB, the slot only {SLOT_MIB} MiB")
        _update_artifact(root, tmp / "root.sqfs", update, variant)
        if not disk:
            return image
        _data(root, tmp / "data.img")
        _esp(root, tmp / "esp.img", variant)
        defs = tmp / "repart.d"
        defs.mkdir()
        for name, text in REPART.items():
            (defs / name).write_text(text.format(esp=tmp / "esp.img", root=tmp / "root.sqfs",
                                                 data=tmp / "data.img"))
        tmp_raw = tmp / "disk.raw"
        seed = uuid.UUID(hashlib.sha256(key.encode()).hexdigest()[:32])
        run(["systemd-repart", "--definitions", str(defs), "--empty=create", "--size=auto",
             "--dry-run=no", "--no-pager", f"--seed={seed}", str(tmp_raw)])
        run(["zstd", "-q", "-T0", "-6", "-f", str(tmp_raw), "-o", str(tmp / "disk.raw.zst")])
        (tmp / "disk.raw.zst").rename(zst)
        tmp_raw.rename(raw)
    _prune(cache, keep=(raw, zst, update, wheel.parent))
    for link, target in (("latest.raw", raw), ("latest.raw.zst", zst),
                         ("latest.update.tar", update)):
        (cache / link).unlink(missing_ok=True)
        (cache / link).symlink_to(target.name)
    return image


def _update_artifact(root: Path, sqfs: Path, out: Path, variant: Variant) -> None:
    """The slot image as an update: kernel, initrd, root squashfs, signed manifest."""
    kernel, initrd = _kernel(root)
    if UPDATE_KEY == TEST_KEY:
        log("update artifact signed with the repository's TEST key (set "
            "EDGE_SPEAKER_UPDATE_KEY to your own: docs/image.md)")
    tmp = atomic(out)
    write_artifact(tmp, variant.version, {"vmlinuz": kernel, "initrd.img": initrd,
                                          "root.sqfs": sqfs},
                   SshKeygenSigner(UPDATE_KEY).sign, options=KERNEL_OPTIONS)
    tmp.rename(out)


KEEP_BUILDS = 6


def _prune(cache: Path, keep: tuple[Path, ...]) -> None:
    """Drop older images, update artifacts and speaker wheels of this cache (~1 GiB per
    image); the newest few stay (the update tests need several builds at once, and
    other checkouts may share the cache); stages keep."""
    outputs = [p for p in cache.glob("edge-speaker-*") if ".tmp" not in p.name]
    newest: dict[str, float] = {}
    for path in outputs:
        stem = path.name.split(".")[0]
        newest[stem] = max(newest.get(stem, 0.0), path.stat().st_mtime)
    fresh = set(sorted(newest, key=newest.__getitem__)[-KEEP_BUILDS:])
    fresh |= {p.name.split(".")[0] for p in keep}
    for path in outputs:
        if path.name.split(".")[0] not in fresh:
            path.unlink(missing_ok=True)
    wheels = sorted(cache.glob("speaker-*"), key=lambda p: p.stat().st_mtime)
    for path in wheels[:-KEEP_BUILDS]:
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)


def build(version: str | None = None, broken: bool = False, disk: bool = True) -> Image:
    """Build (or take from the cache) an image and its update artifact.

    ``disk=False`` builds only the update artifact (what an update test needs of a
    second version: no GPT, no compressed disk)."""
    cache = cache_dir()
    base = build_base(cache)
    deps = build_deps(cache, base)
    wheel = build_speaker_wheel(cache)
    variant = Variant(version or default_version(), broken)
    return assemble(cache, base, deps, wheel, variant, disk)


def main() -> int:
    if os.geteuid() != 0:
        log("run as root (mmdebstrap, chroot and file ownership need it)")
        return 2
    import argparse

    parser = argparse.ArgumentParser(prog="images/build", description=__doc__.split("\n")[0])
    parser.add_argument("--version", help=f"image version (default: {default_version()})")
    parser.add_argument("--update-only", action="store_true",
                        help="build only the update artifact, not the disk image")
    parser.add_argument("--broken-for-test", action="store_true",
                        help="TEST ONLY: an image whose edge-speaker fails to start")
    args = parser.parse_args()
    start = time.monotonic()
    image = build(args.version, args.broken_for_test, disk=not args.update_only)
    log(f"done in {time.monotonic() - start:.1f} s")
    if not args.update_only:
        print(image.raw)
        print(image.compressed)
    print(image.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
