"""Log lines carry syslog priorities under systemd, so `journalctl -p err` works."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest

from speaker.logs import LogfmtFormatter, PriorityPrefix, stderr_is_journal, syslog_priority


@pytest.mark.parametrize(("level", "prio"), [
    (logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3),
    (logging.CRITICAL, 2),
])
def test_levels_map_to_syslog_priorities(level: int, prio: int) -> None:
    record = logging.LogRecord("speaker.x", level, __file__, 1, "config_reload_rejected",
                               None, None)
    line = PriorityPrefix(LogfmtFormatter()).format(record)
    assert line.startswith(f"<{prio}>ts=")
    assert "event=config_reload_rejected" in line
    assert syslog_priority(level) == prio


def test_journal_stream_is_detected_only_for_the_real_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not stderr_is_journal()
    with (tmp_path / "err").open("w") as fh:
        monkeypatch.setattr(sys, "stderr", fh)
        st = os.fstat(fh.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not stderr_is_journal()
