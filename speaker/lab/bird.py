"""A BIRD 2 router inside a lab namespace, configured from a short description."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from speaker.lab.netns import Namespace


@dataclass(frozen=True, slots=True)
class BirdNeighbor:
    """One BGP neighbor of the lab router."""

    name: str
    address: str
    asn: int
    password: str | None = None


def bird_config(router_id: str, asn: int, neighbors: list[BirdNeighbor]) -> str:
    """A BIRD 2 config that accepts every route from the neighbors and exports none."""
    lines = [
        f"router id {router_id};",
        "protocol device {}",
        "protocol kernel kernel4 { ipv4 { export all; import none; }; merge paths on; }",
        "protocol kernel kernel6 { ipv6 { export all; import none; }; merge paths on; }",
    ]
    for n in neighbors:
        family = "ipv6" if ":" in n.address else "ipv4"
        pw = f'  password "{n.password}";\n' if n.password else ""
        lines.append(
            f"protocol bgp {n.name} {{\n  local as {asn};\n  neighbor {n.address} as {n.asn};\n"
            f"{pw}  hold time 9;\n  connect retry time 1;\n  error wait time 1, 5;\n"
            f"  {family} {{ import all; export none; }};\n}}"
        )
    return "\n".join(lines) + "\n"


class BirdRouter:
    """A running BIRD; ended by PID when the lab closes."""

    def __init__(self, ns: Namespace, workdir: Path, config_text: str) -> None:
        self.ns = ns
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{ns.name}-bird.conf"
        self.socket = workdir / f"{ns.name}-bird.ctl"
        self.config_path.write_text(config_text)
        self.proc = ns.spawn(["bird", "-f", "-c", str(self.config_path), "-s", str(self.socket)],
                             stdout=subprocess.DEVNULL)
        for _ in range(100):
            if self.socket.exists():
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"BIRD in {ns.name} did not start")

    def birdc(self, *args: str) -> str:
        """Run a birdc command; return its output."""
        return self.ns.run("birdc", "-s", str(self.socket), *args).stdout

    def routes(self, table: str = "master4") -> dict[str, list[str]]:
        """prefix -> next hops (all paths) of BGP routes in `table`."""
        out: dict[str, list[str]] = {}
        current = ""
        for line in self.birdc("show", "route", "table", table).splitlines():
            parts = line.split()
            if not parts or parts[0].startswith(("BIRD", "Table")):
                continue
            if "/" in parts[0]:
                current = parts[0]
                out.setdefault(current, [])
            if "via" in parts and current:
                out[current].append(parts[parts.index("via") + 1])
        return out

    def session_states(self) -> dict[str, str]:
        """protocol name -> state info (e.g. 'Established')."""
        states = {}
        for line in self.birdc("show", "protocols").splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "BGP":
                states[parts[0]] = parts[5]
        return states

    def stop(self) -> None:
        """End BIRD (by PID)."""
        self.ns.stop(self.proc)


_END = re.compile(rb"^\d{4} ", re.MULTILINE)
"""The last line of a BIRD control-socket reply: a 4-digit code and a space."""


class BirdControl:
    """A persistent connection to BIRD's control socket (~30 us a query, against tens
    of ms for a `birdc` process): for benches and tests that poll the router."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self._read()

    def _read(self) -> str:
        data = b""
        while not _END.search(data):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("BIRD closed the control socket")
            data += chunk
        return data.decode()

    def query(self, command: str) -> str:
        """One command, the whole reply."""
        self.sock.sendall(command.encode() + b"\n")
        return self._read()

    def has_route(self, prefix: str) -> bool:
        """Whether BIRD has a route for exactly this prefix."""
        return prefix in self.query(f"show route {prefix}")

    def count(self) -> int:
        """Networks in all tables."""
        text = self.query("show route count")
        return sum(int(n) for n in re.findall(r"for (\d+) networks in table", text))

    def next_hops(self, prefix: str) -> set[str]:
        """Next hops BIRD has for `prefix` (one per announcing appliance)."""
        return set(re.findall(r"via (\S+)", self.query(f"show route {prefix}")))

    def close(self) -> None:
        """Close the control connection."""
        self.sock.close()
