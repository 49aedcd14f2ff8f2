"""Build the VM test image: Debian's kernel plus a debootstrap rootfs as an initramfs.

The image is made of stages, each cached under ``$EDGE_SPEAKER_CACHE`` (default
``/var/cache/edge-speaker``) in a directory named by a hash of that stage's inputs:

* ``kernel-<abi>``: ``vmlinuz`` and a cpio of the modules the tests need (with
  their dependencies, read from each module's ``.modinfo``), laid out under
  ``usr/lib/modules`` because the rootfs has a merged ``/usr``.
* ``base-<hash>.cpio``: ``debootstrap --variant=minbase bookworm`` with the
  packages in :data:`GUEST_PACKAGES`, slimmed (docs, locales, apt lists).
* ``python-<hash>.cpio``: the project's runtime Python dependencies, downloaded
  as wheels on the host (pip cannot reach the registry from a chroot) and
  installed with ``pip --target`` into ``usr/local/lib/python3.11/dist-packages``.
* ``init-<hash>.cpio``: ``/init`` (from ``guest_init.sh``).

The initramfs handed to qemu is the concatenation of the cpio archives (the
kernel unpacks them in order). Nothing here needs more than apt, debootstrap,
cpio and pip's registry access, so a fresh CI machine builds it cold in about a
minute. Stages are written atomically (a per-process temporary file renamed into
place), so concurrent builders sharing the cache never see a partial stage.
``keepalived`` is in the guest for the connection-survival anchor (``lvs_sync_daemon``).
Run ``python -m tests.vm.image`` to build and print the paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SUITE = "bookworm"
MIRROR = os.environ.get("EDGE_SPEAKER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BUILD_FORMAT = "1"  # bump when a stage's recipe changes in a way its inputs don't show
GUEST_PACKAGES = ("kmod", "ipvsadm", "iproute2", "python3", "procps", "iputils-ping",
                  "keepalived")
GUEST_MODULES = (
    "virtio_pci", "virtio_net", "virtio_console", "9pnet_virtio", "9p",
    "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_fo", "ip_vs_ovf",
    "ip_vs_lblc", "ip_vs_lblcr", "ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq",
    "ip_vs_mh", "ip_vs_twos", "ip_vs_ftp", "nf_conntrack", "nf_nat", "ipip", "ip6_tunnel",
    "tunnel4", "tunnel6", "sctp", "crc32c_generic", "crc32c_intel",
)
SLIM_PATHS = (
    "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
    "usr/share/i18n", "usr/share/zoneinfo", "var/cache/apt", "var/lib/apt/lists",
    "usr/share/common-licenses", "usr/share/lintian", "var/cache/debconf",
    "usr/lib/python3.11/test", "usr/lib/python3.11/ensurepip",
)
RUNTIME_ROOTS_SECTION = re.compile(r"^dependencies = \[(.*?)^\]", re.S | re.M)


def cache_dir() -> Path:
    path = Path(os.environ.get("EDGE_SPEAKER_CACHE", "/var/cache/edge-speaker"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256(BUILD_FORMAT.encode())
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _run(argv: list[str], **kwargs: object) -> str:
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return str(proc.stdout)


def _tmp_beside(out: Path) -> Path:
    """A temporary name unique to this process next to ``out`` (same filesystem).

    Several engineers (and CI jobs) share the cache and may build the same stage at
    once: each writes its own temporary file and renames it into place, so a reader
    sees either no file or a whole one, never a half-written one.
    """
    return out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _publish(tmp: Path, out: Path) -> None:
    os.replace(tmp, out)  # atomic; a concurrent builder's identical file is replaced


def _pack_cpio(root: Path, out: Path) -> None:
    """Pack ``root`` as a newc cpio (owner root) into ``out`` atomically."""
    tmp = _tmp_beside(out)
    files = _run(["find", ".", "-mindepth", "1"], cwd=root)
    try:
        with tmp.open("wb") as fh:
            subprocess.run(
                ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
                input=files.encode(), cwd=root, stdout=fh, check=True,
            )
        _publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _stage_lock(cache: Path, name: str) -> Iterator[None]:
    """Serialize builders of one stage kind (the shared ``debs``/``wheels`` directories
    are written in place by debootstrap and pip); callers re-check after locking."""
    with (cache / f".lock-{name}").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy_atomic(src: Path, out: Path) -> None:
    tmp = _tmp_beside(out)
    try:
        shutil.copy2(src, tmp)
        _publish(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


# -- kernel -----------------------------------------------------------------

def kernel_package() -> str:
    """Name of the kernel package ``linux-image-amd64`` depends on (the ABI moves)."""
    for attempt in range(2):
        out = subprocess.run(
            ["apt-cache", "depends", "linux-image-amd64"],
            capture_output=True, text=True, check=False,
        ).stdout
        match = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", out)
        if match:
            return match.group(1)
        if attempt == 0:
            _run(["apt-get", "update", "-qq"])
    raise RuntimeError("cannot resolve linux-image-amd64's kernel package (apt lists?)")


def _module_depends(path: Path) -> list[str]:
    data = path.read_bytes()
    match = re.search(rb"\0depends=([^\0]*)\0", data)
    if not match or not match.group(1):
        return []
    return [m.decode() for m in match.group(1).split(b",") if m]


def build_kernel(cache: Path) -> tuple[Path, Path]:
    """Return ``(vmlinuz, modules.cpio)`` for the current Debian kernel ABI."""
    pkg = kernel_package()
    stage = cache / f"{pkg}-{_digest(pkg, *GUEST_MODULES)}"
    vmlinuz, cpio = stage / "vmlinuz", stage / "modules.cpio"
    if vmlinuz.exists() and cpio.exists():
        return vmlinuz, cpio
    with _stage_lock(cache, "kernel"):
        if not (vmlinuz.exists() and cpio.exists()):
            stage.mkdir(parents=True, exist_ok=True)
            _build_kernel_stage(cache, pkg, vmlinuz, cpio)
    return vmlinuz, cpio


def _build_kernel_stage(cache: Path, pkg: str, vmlinuz: Path, cpio: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _run(["apt-get", "download", pkg], cwd=tmp)
        deb = next(Path(tmp).glob("*.deb"))
        extract = Path(tmp) / "x"
        _run(["dpkg", "-x", str(deb), str(extract)])
        abi = pkg.removeprefix("linux-image-")
        src = extract / "lib" / "modules" / abi
        by_name = {
            p.name.split(".ko")[0].replace("-", "_"): p for p in src.rglob("*.ko*")
        }
        wanted: set[str] = set()
        todo = [m.replace("-", "_") for m in GUEST_MODULES]
        while todo:
            name = todo.pop()
            if name in wanted or name not in by_name:
                continue  # built in, or absent from this kernel
            wanted.add(name)
            todo.extend(d.replace("-", "_") for d in _module_depends(by_name[name]))
        root = Path(tmp) / "root"
        dst = root / "usr" / "lib" / "modules" / abi
        for name in wanted:
            target = dst / by_name[name].relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(by_name[name], target)
        for meta in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy2(src / meta, dst / meta)
        # vmlinuz last: its presence (with the cpio) marks the stage complete.
        _pack_cpio(root, cpio)
        _copy_atomic(next((extract / "boot").glob("vmlinuz-*")), vmlinuz)


# -- base rootfs --------------------------------------------------------------

def build_base(cache: Path) -> Path:
    out = cache / f"base-{_digest(SUITE, MIRROR, *GUEST_PACKAGES, *SLIM_PATHS)}.cpio"
    if out.exists():
        return out
    with _stage_lock(cache, "base"):
        if not out.exists():
            _build_base_stage(cache, out)
    return out


def _build_base_stage(cache: Path, out: Path) -> None:
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "root"
        _run([
            "debootstrap", "--variant=minbase", f"--include={','.join(GUEST_PACKAGES)}",
            f"--cache-dir={debs}", SUITE, str(root), MIRROR,
        ])
        for rel in SLIM_PATHS:
            shutil.rmtree(root / rel, ignore_errors=True)
        (root / "etc" / "hostname").write_text("esv-vm\n")
        _pack_cpio(root, out)


# -- python deps --------------------------------------------------------------

def runtime_requirements() -> list[str]:
    """Pinned runtime deps: pyproject's dependencies and what they pull in, per the lock."""
    pyproject = (REPO / "pyproject.toml").read_text()
    section = RUNTIME_ROOTS_SECTION.search(pyproject)
    assert section, "pyproject.toml has no dependencies list"
    runtime = {
        re.split(r"[<>=!~\[; ]", s.strip().strip('",'))[0].lower().replace("_", "-")
        for s in section.group(1).splitlines() if s.strip().strip('",')
    }
    pins: dict[str, str] = {}
    via: dict[str, set[str]] = {}
    current = ""
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            current = name.strip().lower()
            pins[current] = version.strip()
            via[current] = set()
        elif current and line.strip().startswith("#"):
            text = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if text:
                via[current].add(text.split(" ")[0].lower())
    changed = True
    while changed:
        changed = False
        for name, parents in via.items():
            if name not in runtime and parents & runtime:
                runtime.add(name)
                changed = True
    return sorted(f"{n}=={pins[n]}" for n in runtime if n in pins)


def build_python(cache: Path) -> Path:
    reqs = runtime_requirements()
    out = cache / f"python-{_digest(sys.version, 'pyc', *reqs)}.cpio"
    if out.exists():
        return out
    with _stage_lock(cache, "python"):
        if not out.exists():
            _build_python_stage(cache, reqs, out)
    return out


def _build_python_stage(cache: Path, reqs: list[str], out: Path) -> None:
    wheels = cache / "wheels"
    wheels.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        req_file = Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        # `pip wheel` takes a registry's wheel as it is and builds one from an
        # sdist where there is none (exabgp 4.2 ships only an sdist).
        _run([*pip, "wheel", "--no-deps", "-w", str(wheels), "-r", str(req_file)])
        site = Path(tmp) / "root" / "usr" / "local" / "lib" / "python3.11" / "dist-packages"
        # Compiled here (the host's Python is the guest's 3.11): under TCG, importing
        # pydantic or ExaBGP from source costs tens of seconds per process.
        _run([*pip, "install", "--no-index", "--no-deps",
              "--find-links", str(wheels), "--target", str(site), "-r", str(req_file)])
        _pack_cpio(Path(tmp) / "root", out)


# -- init -----------------------------------------------------------------------

def build_init(cache: Path) -> Path:
    script = (HERE / "guest_init.sh").read_bytes()
    out = cache / f"init-{_digest(script)}.cpio"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        (root / "init").write_bytes(script)
        (root / "init").chmod(0o755)
        _pack_cpio(root, out)
    return out


@dataclass(frozen=True, slots=True)
class VmImage:
    kernel: Path
    initramfs: Path


def build_image(cache: Path | None = None) -> VmImage:
    """Build (or reuse) every stage and return the kernel and the joined initramfs."""
    cache = cache or cache_dir()
    vmlinuz, modules = build_kernel(cache)
    parts = [build_base(cache), modules, build_python(cache), build_init(cache)]
    joined = cache / f"initramfs-{_digest(*(p.name for p in parts), vmlinuz.parent.name)}.cpio"
    if not joined.exists():
        tmp = _tmp_beside(joined)
        try:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as fh:
                        shutil.copyfileobj(fh, out)
            _publish(tmp, joined)
        finally:
            tmp.unlink(missing_ok=True)
    return VmImage(kernel=vmlinuz, initramfs=joined)


if __name__ == "__main__":
    image = build_image()
    print(image.kernel)
    print(image.initramfs)
