"""Log lines carry no `None` and no 18-digit floats; a never-leader logs no leader_lost."""

from __future__ import annotations

import logging

import pytest

from speaker.election.base import Verdicts
from speaker.logs import JsonFormatter, LogfmtFormatter, Throttle


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "config_reloaded", None, None)
    rec.edge_fields = fields
    return rec


def test_none_fields_are_left_out_and_floats_rounded() -> None:
    line = LogfmtFormatter().format(record(a=None, b=0.1 + 0.2, c=1796194108.123456789, d=3))
    assert "None" not in line
    assert "a=" not in line
    assert "b=0.3 " in line
    assert "c=1796194108.123457" in line
    assert "None" not in JsonFormatter().format(record(a=None, b=1 / 3))


def test_backup_from_the_start_logs_no_leader_lost(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    wakes: list[str] = []
    table = Verdicts(wakes.append, lambda: 1.0)
    table.update("front", False, priority=100, state="init")
    table.update("front", False, priority=100, state="backup")
    assert not [r for r in caplog.records if r.getMessage() == "leader_lost"]
    table.update("front", True, priority=100, state="master")
    table.update("front", False, priority=100, state="backup")
    assert [r.getMessage() for r in caplog.records] == ["leader_gained", "leader_lost"]
    assert wakes


def test_throttle_lets_one_line_per_key_and_period_through() -> None:
    throttle = Throttle(every=10.0)
    assert throttle.allow("k", 0.0) == 0
    assert throttle.allow("k", 1.0) is None
    assert throttle.allow("k", 2.0) is None
    assert throttle.allow("k", 10.5) == 2  # two suppressed since the last line
    assert throttle.allow("other", 10.5) == 0

