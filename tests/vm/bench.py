"""Boot a throwaway guest and run ``bench/ipvs_sync.py`` in it: ``python -m tests.vm.bench``.

Arguments are passed to the benchmark (``--sizes 1000x4,10000x3``, ``--json``). The
guest has no NICs attached to anything (the benchmark sends no traffic); its
namespace and qemu are removed on every path.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.vm.image import build_image
from tests.vm.machine import Vm
from tests.vm.netns import namespaces, run_id, sh


def main(args: list[str]) -> None:
    image = build_image()
    workdir = Path(tempfile.mkdtemp(prefix="esv-vm-"))
    try:
        with namespaces() as nss:
            switch = nss.add(f"esv-bn-{run_id()}")
            for tap in ("tap-front", "tap-back"):
                sh("ip", "-n", switch, "tuntap", "add", "dev", tap, "mode", "tap")
            vm = Vm(image, workdir, switch, ("tap-front", "tap-back"))
            try:
                print(f"guest booted in {vm.wait_ready():.1f} s", file=sys.stderr)
                print(vm.run("python3", "-m", "bench.ipvs_sync", *args, timeout=3000), end="")
            finally:
                vm.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
