"""Structured logs: one line per event with stable `event` and `reason` keys.

    LOG = event_log("speaker.bgp")
    LOG.info("session_up", peer="r1", reason="established")

Format is JSON or logfmt (config `log.format`), on stderr. Under systemd (stderr is
the journal stream named by $JOURNAL_STREAM) records go to journald's native socket
instead, each field its own journal field (`journalctl EVENT=... REASON=...`, see
speaker.journal) with its syslog priority, so `journalctl -p err` shows exactly the
errors; without the socket each stderr line starts with its priority (`<3>` error ...
`<7>` debug), which journald strips and records.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_FIELDS = "edge_fields"


class EventLog:
    """A thin wrapper that turns keyword fields into structured log records."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _emit(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={_FIELDS: fields})

    def debug(self, event: str, **fields: Any) -> None:
        """Log a debug event."""
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an info event."""
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a warning event."""
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log an error event."""
        self._emit(logging.ERROR, event, fields)


class Throttle:
    """Rate limit for log lines about hostile or broken input: at most one line per key
    every `every` seconds, carrying how many were suppressed in between."""

    def __init__(self, every: float = 10.0, max_keys: int = 1024) -> None:
        self.every = every
        self.max_keys = max_keys
        self._last: dict[object, tuple[float, int]] = {}

    def allow(self, key: object, now: float) -> int | None:
        """None: stay quiet; else the number of lines suppressed since the last one."""
        last = self._last.get(key)
        if last is not None and now - last[0] < self.every:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self.max_keys:
            self._last.clear()  # bounded memory under a flood of distinct sources
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]


def _clean(value: Any) -> Any:
    """Floats with at most 6 decimals (no 0.30000000000000004 in a log line)."""
    if isinstance(value, float):
        return round(value, 6)
    return value


def event_log(name: str) -> EventLog:
    """The structured logger for a module."""
    return EventLog(name)


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.getMessage(),
    }
    # None means "not applicable": leave the key out rather than print `None`
    out.update((k, _clean(v)) for k, v in getattr(record, _FIELDS, {}).items() if v is not None)
    if record.exc_info and record.exc_info[1] is not None:
        out["error"] = repr(record.exc_info[1])
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as JSON."""
        return json.dumps(_record_fields(record), default=str, sort_keys=False)


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    """key=value pairs, quoted where needed."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as logfmt."""
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _record_fields(record).items())


def syslog_priority(levelno: int) -> int:
    """syslog priority of a logging level: error 3, warning 4, info 6, debug 7."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def stderr_is_journal() -> bool:
    """True when stderr is the journald stream systemd named in $JOURNAL_STREAM."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class PriorityPrefix(logging.Formatter):
    """Prefix another formatter's line with ``<N>`` (journald's SyslogLevelPrefix)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        """Render with the inner formatter, then add the priority."""
        return f"<{syslog_priority(record.levelno)}>{self.inner.format(record)}"


def setup_logging(fmt: str = "logfmt", level: str = "info",
                  priority_prefix: bool | None = None) -> None:
    """Route every log record to stderr in the chosen format (``priority_prefix``:
    default on when stderr is the journal)."""
    from speaker.journal import JournalHandler, journal_available

    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else LogfmtFormatter()
    journal = stderr_is_journal() if priority_prefix is None else priority_prefix
    handler: logging.Handler
    if journal and priority_prefix is None and journal_available():
        handler = JournalHandler(formatter, syslog_priority, _record_fields)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(PriorityPrefix(formatter) if journal else formatter)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, JournalHandler):  # owns a socket
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
