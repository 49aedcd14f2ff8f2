"""Native journald logging: the datagram a record becomes, read from a socket standing in
for journald's (the real journald is exercised in the image tier)."""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

from speaker.journal import JournalHandler, encode, field_name
from speaker.logs import LogfmtFormatter, _record_fields, event_log, syslog_priority


def parse(data: bytes) -> dict[str, str]:
    """Decode journald's native datagram format."""
    out: dict[str, str] = {}
    while data:
        line, sep, rest = data.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            data = rest
        else:
            (size,) = struct.unpack("<Q", rest[:8])
            out[line.decode()] = rest[8:8 + size].decode()
            data = rest[8 + size + 1:]
        assert sep
    return out


def test_field_names_are_valid_journal_fields() -> None:
    assert field_name("reason") == "REASON"
    assert field_name("first-error") == "FIRST_ERROR"
    assert field_name("_boot") == "BOOT"
    assert field_name("9lives") == "F_9LIVES"


def test_multi_line_values_use_the_length_form() -> None:
    assert parse(encode({"MESSAGE": "a\nb", "EVENT": "x"})) == {"MESSAGE": "a\nb", "EVENT": "x"}


def test_a_record_becomes_searchable_fields(tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    handler = JournalHandler(LogfmtFormatter(), syslog_priority, _record_fields, path)
    logger = logging.getLogger("speaker.test_journal")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        event_log("speaker.test_journal").warning("bgp_session_down", peer="r1",
                                                  reason="hold_timer_expired",
                                                  detail="line one\nline two")
        fields = parse(server.recv(65536))
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "edge-speaker"
    assert fields["EVENT"] == "bgp_session_down"
    assert fields["PEER"] == "r1"
    assert fields["REASON"] == "hold_timer_expired"
    assert fields["DETAIL"] == "line one\nline two"
    assert fields["MESSAGE"].startswith("ts=")
    assert "event=bgp_session_down" in fields["MESSAGE"]
    assert "TS" not in fields


def test_journald_away_falls_back_to_stderr(tmp_path: Path, capsys: object) -> None:
    handler = JournalHandler(LogfmtFormatter(), syslog_priority, _record_fields,
                             tmp_path / "nobody-listens.sock")
    record = logging.LogRecord("speaker.x", logging.ERROR, __file__, 1, "boom", None, None)
    handler.emit(record)
    handler.close()
    assert handler.fallbacks == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.startswith("<3>ts=")
    assert "event=boom" in err
