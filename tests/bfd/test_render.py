"""`speaker status` text shows each peer's BFD session and whether its path is suspect."""

from __future__ import annotations

from typing import Any

from speaker.cli.render import render_status


def doc(peers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"node": "lb1", "version": "0", "uptime_s": 1.0, "ready": True,
            "appliance": {"healthy": True, "reasons": [], "drains": {"appliance": False}},
            "config": {"last_reload": {"ok": True}}, "vips": [], "peers": peers,
            "election": {}, "reconcile": {"last": None}}


def peer(name: str, bfd: dict[str, Any] | None, path: str) -> dict[str, Any]:
    return {"name": name, "address": "192.0.2.1", "state": "up", "announced": 1,
            "reason": "established", "detail": "", "bfd": bfd, "path": path}


def test_bfd_column_and_path() -> None:
    down = {"state": "down", "diag": "detect_time_expired", "min_tx_ms": 100,
            "multiplier": 3, "multihop": True}
    up = {"state": "up", "diag": "none", "min_tx_ms": 300, "multiplier": 3, "multihop": False}
    text = render_status(doc([peer("r1", down, "suspect"), peer("r2", up, "ok"),
                              peer("r3", None, "ok")]), backends=False)
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  r")}
    assert "BFD" in text
    assert "PATH" in text
    assert "down (detect_time_expired) 100ms x3 multihop" in lines["r1"]
    assert lines["r1"].rstrip().endswith("suspect")
    assert "up 300ms x3" in lines["r2"]
    assert lines["r3"].split()[-2:] == ["-", "ok"]
