"""Native journald logging: each record as one datagram of fields on journald's socket
(the protocol of sd_journal_send), so every structured field is searchable:

    journalctl -u edge-speaker EVENT=bgp_session_down PEER=r1
    journalctl -u edge-speaker -p warning REASON=no_healthy_backends

MESSAGE is the same logfmt/JSON line the terminal shows (`journalctl -o cat` reads as
before), PRIORITY the syslog level, SYSLOG_IDENTIFIER `edge-speaker`, and each field of
the event becomes an upper-case journal field (EVENT, REASON, VIP, SERVICE, PEER, ...).
Sending never blocks the caller: the socket is non-blocking, and a datagram journald
cannot take now (its queue is full, the record is too large) goes to stderr instead,
which under systemd is the journal stream.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
IDENTIFIER = "edge-speaker"
_BAD = re.compile(r"[^A-Z0-9_]")


def field_name(key: str) -> str:
    """A journal field name for a log key: upper case, [A-Z0-9_], not starting with `_`
    (reserved for trusted fields) or a digit, at most 64 characters."""
    name = _BAD.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F_" + name
    return name[:64]


def encode(fields: dict[str, str]) -> bytes:
    """The datagram: `KEY=value\\n`, or for a value with a newline
    `KEY\\n<64-bit little-endian length>value\\n`."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends records to journald; `fields_of(record)` gives the structured fields."""

    def __init__(self, line: logging.Formatter, priority: Callable[[int], int],
                 fields_of: Callable[[logging.LogRecord], dict[str, Any]],
                 path: Path = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.line = line
        self._priority = priority
        self._fields_of = fields_of
        self.path = str(path)
        self.fallbacks = 0
        """Records written to stderr because journald could not take them at once."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        """Every journal field of one record."""
        out = {"MESSAGE": self.line.format(record),
               "PRIORITY": str(self._priority(record.levelno)),
               "SYSLOG_IDENTIFIER": IDENTIFIER}
        for key, value in self._fields_of(record).items():
            if key in ("ts", "level"):
                continue  # journald has its own timestamp and PRIORITY
            name = field_name(key)
            if name not in out:
                out[name] = str(value)
        return out

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record (stderr if journald cannot take it now)."""
        try:
            data = encode(self.fields(record))
            self.sock.sendto(data, self.path)
        except OSError:
            self.fallbacks += 1
            try:
                sys.stderr.write(f"<{self._priority(record.levelno)}>"
                                 f"{self.line.format(record)}\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                self.handleError(record)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
        super().close()


def journal_available(path: Path = JOURNAL_SOCKET) -> bool:
    """journald's native socket exists and is writable."""
    return path.is_socket() and os.access(path, os.W_OK)
