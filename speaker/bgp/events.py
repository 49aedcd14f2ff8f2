"""Lines ExaBGP writes to its API process, parsed into typed messages.

ExaBGP (with `encoder json`, `neighbor-changes` and `exabgp_api_ack=true`)
writes three kinds of lines to the bridge: acks (`done` / `error`) for each
command in order, JSON objects for events (we use `"type": "state"`: connected,
up, down with a reason), and plain text answering a `show` query. Pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from ipaddress import ip_address

from speaker.model import IPAddress


@dataclass(frozen=True, slots=True)
class Ack:
    """`done` (ok) or `error` for the oldest command in flight."""

    ok: bool


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A neighbor changed state: 'connected' (TCP up), 'up' (established), 'down'."""

    peer: IPAddress
    state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    """Any other line (output of a `show` command)."""

    line: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A JSON event we do not use (update, notification, ...)."""

    kind: str


Message = Ack | StateEvent | Text | Ignored


def parse_line(raw: str) -> Message:  # noqa: PLR0911 - one return per message kind
    """One line from ExaBGP, without its newline."""
    line = raw.strip()
    if line == "done":
        return Ack(True)
    if line == "error":
        return Ack(False)
    if not line.startswith("{"):
        return Text(line)
    try:
        data = json.loads(line)
    except ValueError:
        return Text(line)
    if not isinstance(data, dict):
        return Ignored("non-object")
    kind = str(data.get("type", ""))
    neighbor = data.get("neighbor")
    if kind != "state" or not isinstance(neighbor, dict):
        return Ignored(kind)
    try:
        peer = ip_address(str(neighbor["address"]["peer"]))
    except (KeyError, TypeError, ValueError):
        return Ignored(kind)
    return StateEvent(peer, str(neighbor.get("state", "")), str(neighbor.get("reason", "")))


_SUMMARY_ROW = re.compile(r"^(\S+)\s+\S+\s+\S+\s+(\S+)")


def established_from_summary(lines: list[str]) -> frozenset[IPAddress]:
    """Peers listed as established by `show neighbor summary` (4.2 and 5.0 text form)."""
    out: set[IPAddress] = set()
    for line in lines:
        match = _SUMMARY_ROW.match(line.strip())
        if not match or match.group(2).lower() != "established":
            continue
        try:
            out.add(ip_address(match.group(1)))
        except ValueError:
            continue
    return frozenset(out)


_NOTIFICATION = re.compile(r"notification (received|sent) \((\d+),\s*(\d+)\)")
_NOTIFICATION_CODES = {
    (2, 2): "bad_peer_as", (2, 3): "bad_bgp_identifier", (2, 4): "unsupported_capability",
    (2, 6): "unacceptable_hold_time", (2, 7): "unsupported_capability",
    (6, 1): "peer_max_prefix", (6, 2): "peer_admin_shutdown", (6, 3): "peer_deconfigured",
    (6, 4): "peer_admin_reset", (6, 5): "connection_rejected", (6, 7): "connection_collision",
}


def down_reason_code(reason: str) -> str:
    """A stable reason code for ExaBGP's free-text 'down' reason. A NOTIFICATION
    (RFC 4271 / 4486 code, subcode) the operator can act on gets its own code."""
    text = reason.lower()
    match = _NOTIFICATION.search(text)
    if match:
        code, subcode = int(match.group(2)), int(match.group(3))
        named = _NOTIFICATION_CODES.get((code, subcode))
        if named:
            return named if match.group(1) == "received" else f"sent_{named}"
    table = (
        ("hold timer", "hold_timer_expired"),
        ("notification received", "notification_received"),
        ("notification sent", "notification_sent"),
        ("closed the session", "peer_closed"),
        ("connection reset", "connection_reset"),
        ("broken pipe", "connection_reset"),
        ("terminated", "exabgp_shutdown"),
        ("shutdown", "exabgp_shutdown"),
    )
    for needle, reason_code in table:
        if needle in text:
            return reason_code
    return "session_down"
