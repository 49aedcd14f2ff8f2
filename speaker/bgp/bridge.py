"""The ExaBGP API process: relays lines between ExaBGP and the speaker's socket.

    python -m speaker.bgp.bridge /run/edge-speaker/bgp/bridge.sock

ExaBGP starts this as its `process` and talks to it over stdin/stdout; the
bridge connects to the speaker's unix socket and copies bytes both ways,
unchanged. It exits when either side closes: ExaBGP then respawns it (and the
speaker resynchronises over the new connection), or, when ExaBGP itself is
gone, nothing is left behind. Standard library only, so it starts fast.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time

CONNECT_WAIT_S = 5.0
_CHUNK = 65536


def connect(path: str, wait: float = CONNECT_WAIT_S) -> socket.socket:
    """Connect to the speaker's socket, retrying while it is not there yet."""
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
        else:
            return sock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def relay(sock: socket.socket, stdin_fd: int = 0, stdout_fd: int = 1) -> None:
    """Copy ExaBGP's output to the socket and the socket's data to ExaBGP until EOF."""
    sel = selectors.DefaultSelector()
    sel.register(stdin_fd, selectors.EVENT_READ, "exabgp")
    sel.register(sock, selectors.EVENT_READ, "speaker")
    while True:
        for key, _ in sel.select():
            if key.data == "exabgp":
                data = os.read(stdin_fd, _CHUNK)
                if not data:
                    return
                sock.sendall(data)
            else:
                data = sock.recv(_CHUNK)
                if not data:
                    return
                _write_all(stdout_fd, data)


def main(argv: list[str]) -> int:
    """Entry point: `bridge SOCKET`."""
    if len(argv) != 2:
        sys.stderr.write("usage: python -m speaker.bgp.bridge SOCKET\n")
        return 2
    try:
        sock = connect(argv[1])
    except OSError as exc:
        sys.stderr.write(f"bridge: cannot connect to {argv[1]}: {exc}\n")
        return 1
    try:
        relay(sock)
    except OSError:
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
