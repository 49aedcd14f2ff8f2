"""Unit tests: which ExaBGP an executable is (dist-info RECORD, no process
started; probe only for other executables), and the ExaBGP 4.2 refresh repair
checked against ExaBGP 4.2's own classes (in a child interpreter: the repair
patches classes)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from speaker.bgp.exaconf import ExaBgpVersion, default_executable
from speaker.bgp.install import find_install, from_record

REFRESH_CHECK = """
import sys
from exabgp.configuration.setup import environment
environment.setup("")
from exabgp.protocol.family import AFI, SAFI
from exabgp.rib.outgoing import OutgoingRIB
if sys.argv[1] == "repaired":
    from speaker.bgp.refreshfix import _apply
    _apply()
rib = OutgoingRIB(True, [(AFI.ipv4, SAFI.unicast)])
rib.resend([], True)  # enhanced refresh requested with an empty adj-rib-out
if not rib.pending():
    print("stuck")  # 4.2.25: the refresh never ends, later routes are parked
    sys.exit(0)
out = list(rib.updates(True))
wire = [m for update in out for m in update.messages(None, True)]
print(" ".join(str(int(u.reserved)) for u in out), [len(m) for m in wire],
      [m[18] for m in wire], rib.pending(), rib._enhanced_refresh_start)
"""


def fake_venv(root: Path, version: str, listed: bool = True) -> Path:
    """A virtualenv layout with an `exabgp` console script and its dist-info."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3").symlink_to(sys.executable)
    exe = bin_dir / "exabgp"
    exe.write_text(f"#!{bin_dir / 'python3'}\nimport sys\n")
    dist = root / "lib" / "python3.11" / "site-packages" / f"exabgp-{version}.dist-info"
    dist.mkdir(parents=True)
    record = "../../../bin/exabgp,sha256=x,1\n" if listed else "exabgp/__init__.py,,\n"
    (dist / "RECORD").write_text(record)
    return exe


def test_version_and_interpreter_come_from_the_record(tmp_path: Path) -> None:
    exe = fake_venv(tmp_path / "v5", "5.0.15")
    found = from_record(exe)
    assert found is not None
    assert found.version == ExaBgpVersion(5, 0, "5.0.15")
    assert found.python == tmp_path / "v5" / "bin" / "python3"
    assert from_record(fake_venv(tmp_path / "other", "4.2.25", listed=False)) is None
    wrapper = tmp_path / "wrapper"
    wrapper.write_text("#!/bin/sh\nexec exabgp \"$@\"\n")
    assert from_record(wrapper) is None


def test_the_venv_exabgp_is_found_without_running_it() -> None:
    found = asyncio.run(find_install(default_executable()))
    assert found.found_by == "record"
    assert found.version.text == "4.2.25"
    assert found.python is not None


def test_other_executables_are_probed_once(tmp_path: Path) -> None:
    count = tmp_path / "count"
    exe = tmp_path / "exabgp"
    exe.write_text(f"#!/bin/sh\necho x >> {count}\necho 'ExaBGP : 5.0.15'\n")
    exe.chmod(0o755)
    first = asyncio.run(find_install(exe))
    again = asyncio.run(find_install(exe))
    assert first == again
    assert first.found_by == "probe"
    assert first.version == ExaBgpVersion(5, 0, "5.0.15")
    assert count.read_text().count("x") == 1, "probed once, then cached"


def run_check(mode: str) -> str:
    result = subprocess.run([sys.executable, "-c", REFRESH_CHECK, mode], capture_output=True,
                            text=True, check=True, timeout=60)
    return result.stdout.strip()


def test_exabgp_42_enhanced_refresh_is_stuck_without_the_repair() -> None:
    assert run_check("plain") == "stuck"


def test_repaired_exabgp_42_sends_begin_and_end_of_route_refresh() -> None:
    # BoRR (1) and EoRR (2), each a 23-byte ROUTE-REFRESH message (type 5); then done
    assert run_check("repaired") == "1 2 [23, 23] [5, 5] False []"
