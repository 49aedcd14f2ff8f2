"""Real BFD peers for the lab tests and the benchmark: BIRD 2's protocol bfd and FRR
bfdd (standalone, no zebra), each in its namespace with files in a private dir."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speaker.lab.netns import Namespace


@dataclass(frozen=True)
class BfdPeer:
    """One session as the router configures it."""

    address: str
    local: str
    tx_ms: int = 100
    rx_ms: int = 100
    multiplier: int = 3
    multihop: bool = False


class BirdBfd:
    """BIRD with `protocol bfd` and static neighbors (one timer set per interface)."""

    def __init__(self, ns: Namespace, workdir: Path, peers: list[BfdPeer],
                 extra: str = "") -> None:
        self.ns = ns
        workdir.mkdir(parents=True, exist_ok=True)
        p = peers[0]
        opts = (f"min rx interval {p.rx_ms} ms; min tx interval {p.tx_ms} ms; "
                f"multiplier {p.multiplier};")
        lines = ["router id 192.0.2.1;", "protocol device {}", "protocol bfd {",
                 f'  interface "*" {{ {opts} }};', f"  multihop {{ {opts} }};"]
        lines += [f"  neighbor {n.address} local {n.local}"
                  f"{' multihop on' if n.multihop else ''};" for n in peers]
        lines += ["}", extra]
        conf = workdir / "bird.conf"
        conf.write_text("\n".join(lines) + "\n")
        self.sock = workdir / "bird.ctl"
        self.proc = ns.spawn(["bird", "-f", "-c", str(conf), "-s", str(self.sock)])

    def sessions(self) -> dict[str, dict[str, str]]:
        """address -> {state, interval, timeout} from `show bfd sessions`."""
        out = self.ns.run("birdc", "-s", str(self.sock), "show", "bfd", "sessions",
                          check=False).stdout
        rows = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 6 and re.match(r"^[0-9a-f.:]+$", parts[0]) and (
                    "." in parts[0] or ":" in parts[0]):
                # IP  Interface  State  Since  Interval  Timeout (Interface may be '---')
                rows[parts[0]] = {"state": parts[2].lower(), "interval": parts[-2],
                                  "timeout": parts[-1]}
        return rows

    def stop(self) -> None:
        """End BIRD by PID."""
        self.ns.stop(self.proc)


class FrrBfdd:
    """FRR bfdd on its own (no zebra), vty socket in a private directory."""

    def __init__(self, ns: Namespace, peers: list[BfdPeer]) -> None:
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="ebf-frr-"))
        self.dir.chmod(0o755)
        self.write(peers)
        subprocess.run(["chown", "-R", "frr:frr", str(self.dir)], check=False)
        self.proc = ns.spawn(["/usr/lib/frr/bfdd", "-f", str(self.dir / "bfdd.conf"),
                              "-i", str(self.dir / "bfdd.pid"), "--vty_socket", str(self.dir),
                              "-z", str(self.dir / "zserv.api"), "-A", "127.0.0.1", "-P", "0",
                              "--bfdctl", str(self.dir / "bfdd.sock")])

    def write(self, peers: list[BfdPeer]) -> None:
        """bfdd.conf with these peers."""
        lines = ["log stdout", "bfd"]
        for p in peers:
            lines += [f" peer {p.address}{' multihop' if p.multihop else ''} "
                      f"local-address {p.local}",
                      f"  receive-interval {p.rx_ms}", f"  transmit-interval {p.tx_ms}",
                      f"  detect-multiplier {p.multiplier}", " !"]
        (self.dir / "bfdd.conf").write_text("\n".join([*lines, "!"]) + "\n")
        (self.dir / "bfdd.conf").chmod(0o644)

    def peers(self) -> dict[str, dict[str, Any]]:
        """address -> `show bfd peers json` entry."""
        out = self.ns.run("vtysh", "--vty_socket", str(self.dir), "-c", "show bfd peers json",
                          check=False).stdout
        try:
            data = json.loads(out or "[]")
        except ValueError:
            return {}
        return {p["peer"]: p for p in data if isinstance(p, dict)}

    def stop(self) -> None:
        """End bfdd by PID and remove its directory."""
        self.ns.stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)
