"""On the appliance, edge-speaker logs natively to journald: every structured field of
an event is a journal field an operator can search (runs on the image tier's booted
appliance, after tests/image/test_appliance.py)."""

from __future__ import annotations

import json
from typing import Any

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

    # the operator's tools are installed, as the Ansible role installs them
    al.appliance.ssh("test -s /usr/share/bash-completion/completions/speaker && "
                     "test -s /usr/local/share/man/man1/speaker.1")
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


ADD_BFD = ("import yaml,sys; p=sys.argv[1]; c=yaml.safe_load(open(p)); "
           "c['bgp']['peers'][0]['bfd']={'min_tx':'300ms','min_rx':'300ms','multiplier':3}; "
           "open(p,'w').write(yaml.safe_dump(c))")


@pytest.mark.timeout(600)
def test_time_critical_child_is_realtime_and_sysctls_hold(appliance_lab: ApplianceLab) -> None:
    """Under the hardened unit a time-critical child (here BFD, added by reload) still
    gets SCHED_RR (LimitRTPRIO, RestrictRealtime=no, sched_setscheduler allowed), and the
    daemon can set the network sysctls its config needs (ReadWritePaths=/proc/sys/net)."""
    al = appliance_lab
    ssh = al.appliance.ssh
    wait_for("ssh", al.appliance.ssh_up, timeout=600, every=2)
    live = "/etc/edge-speaker/speaker.yaml"

    def status() -> dict[str, Any] | None:
        out = ssh("/opt/edge-speaker/venv/bin/speaker status --json", check=False)
        try:
            doc = json.loads(out)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) and doc.get("ready") else None

    doc = wait_for("READY in status", status, timeout=300, every=2)
    assert doc["sysctls"]["mismatches"] == []
    ssh(f"cp {live} /run/before-bfd.yaml && /opt/edge-speaker/venv/bin/python -c "
        f"\"{ADD_BFD}\" $(readlink -f {live}) && systemctl reload edge-speaker")
    try:
        def bfd_child() -> str | None:
            got = status()
            child = ((got or {}).get("components", {}).get("BfdRunner") or {}).get("child", {})
            return child.get("sched") if child.get("running") else None

        sched = wait_for("the BFD child running", bfd_child, timeout=120, every=2)
        assert str(sched).startswith("rr:"), sched
        assert ssh("journalctl -b -u edge-speaker EVENT=timing_child_not_realtime -o cat "
                   "--no-pager", check=False).strip() == ""
    finally:
        ssh(f"cp /run/before-bfd.yaml {live} && systemctl reload edge-speaker", check=False)
