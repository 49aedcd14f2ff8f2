"""Figures of the appliance image: size, build times, power-on -> serving under TCG.

Run as root from the repository: ``.venv/bin/python -m bench.image [--cold] [--boots 2]``.

* sizes of the raw image and its ``.zst`` (goal <= 1 GiB and <= 300 MiB);
* ``--cold``: a build into an empty cache directory (mmdebstrap included);
* warm build: the speaker wheel and the final assembly redone, as after a code change
  (the base and dependency stages come from the cache);
* per boot (qemu TCG, OVMF, the tests' lab): power-on -> the VIP route at BIRD and
  -> the first HTTP answer through the VIP at the client (goal <= 30 s under TCG).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "images"))

import builder  # noqa: E402

from speaker.lab.netns import Lab  # noqa: E402
from tests.image.appliance import VIP_NAT, build_lab, http_get, wait_for  # noqa: E402


def timed_build() -> tuple[builder.Image, float]:
    start = time.monotonic()
    image = builder.build()
    return image, time.monotonic() - start


def warm_build() -> tuple[builder.Image, float]:
    """Drop the cached speaker wheel and final image, as a code change does, and rebuild."""
    cache = builder.cache_dir()
    wheel = builder.build_speaker_wheel(cache)
    image = builder.build()
    shutil.rmtree(wheel.parent)
    image.raw.unlink()
    image.compressed.unlink()
    return timed_build()


def boot(image: Path) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="eim-bench-"))
    try:
        with Lab(f"eimb{os.getpid() % 100:02d}") as lab:
            al = build_lab(lab, image, workdir)
            t0 = al.appliance.power_on()
            try:
                wait_for("VIP at BIRD", al.vip_at_bird, timeout=600, every=0.1)
                route = time.monotonic() - t0
                wait_for("HTTP", lambda: http_get(al.client.name, VIP_NAT, 80, 1.0), 120, 0.05)
                answer = time.monotonic() - t0
                console = al.appliance.console_text()
            finally:
                al.appliance.close()
                for backend in al.backends:
                    backend.stop()
        kernel = "EFI stub" in console
        return {"vip_at_bird_s": round(route, 1), "first_http_s": round(answer, 1),
                "kernel_started": float(kernel)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="also time a build from scratch")
    parser.add_argument("--boots", type=int, default=2)
    args = parser.parse_args()
    out: dict[str, object] = {}
    if args.cold:
        with tempfile.TemporaryDirectory(dir="/var/tmp") as cold:
            os.environ["EDGE_SPEAKER_CACHE"] = cold
            _, out["cold_build_s"] = timed_build()
            del os.environ["EDGE_SPEAKER_CACHE"]
    image, _ = timed_build()
    _, seconds = warm_build()
    out["warm_build_s"] = round(seconds, 1)
    out["raw_mib"] = round(image.raw.stat().st_size / 2**20)
    out["zst_mib"] = round(image.compressed.stat().st_size / 2**20)
    out["boots"] = [boot(image.raw) for _ in range(args.boots)]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
