"""The framed channel between `speaker run` and its BFD child: 4-byte length + JSON.

Parent to child (the child's stdin): {"t": "config", "sessions": [SessionSpec...]}.
Child to parent (its stdout): "hello" (pid, scheduling), "state" (one per session
state change), "stats" (every second: per session state, counters, timers) and
"error" (a session that cannot run, e.g. its source address is missing).
"""

from __future__ import annotations

import json
import struct
from typing import Any

MAX_FRAME = 1 << 20
_LEN = struct.Struct("!I")


class FrameError(Exception):
    """The other side sent something that is not a frame (a broken invariant)."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame."""
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


class FrameReader:
    """Accumulates bytes; yields complete messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the messages now complete."""
        self._buffer += data
        out = []
        while len(self._buffer) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buffer)
            if size > MAX_FRAME:
                raise FrameError(f"frame length {size} exceeds {MAX_FRAME}")
            if len(self._buffer) < _LEN.size + size:
                break
            body = bytes(self._buffer[_LEN.size:_LEN.size + size])
            del self._buffer[:_LEN.size + size]
            try:
                message = json.loads(body)
            except ValueError as exc:
                raise FrameError(f"frame is not JSON: {exc}") from None
            if not isinstance(message, dict) or not isinstance(message.get("t"), str):
                raise FrameError("frame is not an object with a type 't'")
            out.append(message)
        return out
