"""Client side of the status/admin API, used by the `speaker` CLI."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class ApiError(Exception):
    """The daemon could not be reached or refused the request."""


class DaemonUnreachableError(ApiError):
    """No daemon answers on the socket (not running, wrong socket, no permission)."""


class RequestRefusedError(ApiError):
    """The daemon answered and refused the request (unknown service or backend, ...)."""


def request(socket_path: Path, command: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one request and return the response's `result` (ApiError on failure)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
            chunks: list[bytes] = []
            while not chunks or not chunks[-1].endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except FileNotFoundError:
        raise DaemonUnreachableError(
            f"no daemon socket at {socket_path} (is `speaker run` running?)") from None
    except OSError as exc:
        raise DaemonUnreachableError(
            f"cannot talk to the daemon at {socket_path}: {exc.strerror or exc}") from None
    try:
        response = json.loads(b"".join(chunks))
    except ValueError:
        raise DaemonUnreachableError("the daemon sent an unreadable response") from None
    if not response.get("ok"):
        raise RequestRefusedError(str(response.get("error", "request failed")))
    return response.get("result")
