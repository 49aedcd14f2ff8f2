"""The bridge process relays both ways and exits when either side closes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def start_bridge(path: Path) -> subprocess.Popen[bytes]:
    """`python -m speaker.bgp.bridge SOCKET` with pipes standing in for ExaBGP."""
    return subprocess.Popen([sys.executable, "-m", "speaker.bgp.bridge", str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_relays_both_ways_and_exits_when_exabgp_closes(tmp_path: Path) -> None:
    path = tmp_path / "b.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    bridge = start_bridge(path)
    assert bridge.stdin is not None
    assert bridge.stdout is not None
    conn, _ = server.accept()
    conn.sendall(b"announce route 203.0.113.1/32 next-hop self\n")
    assert bridge.stdout.readline() == b"announce route 203.0.113.1/32 next-hop self\n"
    bridge.stdin.write(b"done\n")
    bridge.stdin.flush()
    with conn.makefile("rb") as stream:
        assert stream.readline() == b"done\n"
    bridge.stdin.close()  # ExaBGP went away
    assert bridge.wait(5) == 0
    assert conn.recv(10) == b""  # the speaker sees the connection close
    bridge.stdout.close()
    conn.close()
    server.close()


def test_exits_when_the_speaker_closes(tmp_path: Path) -> None:
    path = tmp_path / "b.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    bridge = start_bridge(path)
    conn, _ = server.accept()
    conn.close()
    assert bridge.wait(5) == 0
    server.close()
    assert bridge.stdin is not None
    bridge.stdin.close()
    assert bridge.stdout is not None
    bridge.stdout.close()


def test_gives_up_without_a_speaker(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "speaker.bgp.bridge", str(tmp_path / "no")],
                            capture_output=True, timeout=15, check=False)
    assert result.returncode == 1
    assert b"cannot connect" in result.stderr
