"""On the appliance, edge-speaker logs natively to journald: every structured field of
an event is a journal field an operator can search (runs on the image tier's booted
appliance, after tests/image/test_appliance.py)."""

from __future__ import annotations

import json

import pytest

from tests.image.appliance import ApplianceLab, wait_for

pytestmark = [pytest.mark.image, pytest.mark.vm, pytest.mark.lab, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_events_are_searchable_by_their_fields(appliance_lab: ApplianceLab) -> None:
    al = appliance_lab
    wait_for("ssh", al.appliance.ssh_up, timeout=600, every=2)

    def announced() -> str:
        return al.appliance.ssh("journalctl -b -u edge-speaker EVENT=announce "
                                "REASON=announced -o json --no-pager | tail -1", check=False)

    entry = json.loads(wait_for("an announce event in the journal", announced, timeout=300))
    assert entry["SYSLOG_IDENTIFIER"] == "edge-speaker"
    assert entry["PRIORITY"] == "6"
    assert entry["TARGET"].endswith("/32")
    assert "event=announce" in entry["MESSAGE"]  # `journalctl -o cat` reads as on a terminal
    # priorities filter: nothing at info level shows under -p warning
    warnings = al.appliance.ssh("journalctl -b -u edge-speaker -p warning -o json --no-pager",
                                check=False)
    assert all(json.loads(line)["PRIORITY"] in {"0", "1", "2", "3", "4"}
               for line in warnings.splitlines() if line.strip())
