"""Session state per peer, as told by ExaBGP's events and the kernel's sockets.

A small state table with an injectable clock: ExaBGP's `connected` / `up` /
`down` events, the absence of ExaBGP, and the socket diagnosis (see
`diagnose`) each move a peer to a state with a stable reason code and, where
useful, a sentence for the operator. No I/O apart from the metrics gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from speaker.bgp.diagnose import Verdict
from speaker.bgp.events import StateEvent, down_reason_code
from speaker.bgp.metrics import SESSION_FLAPS, SESSION_UP
from speaker.bgp.plan import Peer
from speaker.model import IPAddress, PeerState

DIAGNOSIS_REASONS = frozenset({"tcp_md5_mismatch_suspected", "tcp_connect_unanswered"})


@dataclass(frozen=True, slots=True)
class Session:
    """State of one peer plus the operator-facing detail."""

    state: str
    since: float
    reason: str
    detail: str = ""


class SessionTable:
    """Sessions by peer name."""

    def __init__(self, peers: Iterable[Peer], clock: Callable[[], float]) -> None:
        self._clock = clock
        self.peers: dict[str, Peer] = {}
        self._by_address: dict[IPAddress, str] = {}
        self._sessions: dict[str, Session] = {}
        self.events: dict[str, int] = {}
        """Per peer: how many state events ExaBGP sent (a summary requested before
        the latest event may describe an older state than that event)."""
        self.set_peers(peers)

    def set_peers(self, peers: Iterable[Peer]) -> None:
        """Adopt a new peer list; known peers keep their state."""
        self.peers = {p.name: p for p in peers}
        self._by_address = {p.address: p.name for p in self.peers.values()}
        for name in list(self._sessions):
            if name not in self.peers:
                del self._sessions[name]
                SESSION_UP.remove(name)
                SESSION_FLAPS.remove(name)
        for name in self.peers:
            if name not in self._sessions:
                SESSION_FLAPS.labels(name)  # 0 from the start: increase() sees the first
                self._set(name, "idle", "exabgp_not_running")

    def _set(self, name: str, state: str, reason: str, detail: str = "") -> bool:
        old = self._sessions.get(name)
        if old is not None and (old.state, old.reason, old.detail) == (state, reason, detail):
            return False
        since = old.since if old is not None and old.state == state else self._clock()
        if old is not None and old.state == "up" and state != "up":
            SESSION_FLAPS.labels(name).inc()
        self._sessions[name] = Session(state, since, reason, detail)
        SESSION_UP.labels(name).set(1 if state == "up" else 0)
        return True

    def name_of(self, address: IPAddress) -> str | None:
        """Peer name for a neighbor address."""
        return self._by_address.get(address)

    def on_event(self, event: StateEvent) -> str | None:
        """Apply an ExaBGP state event; returns the peer name if it became up/down."""
        name = self.name_of(event.peer)
        if name is None:
            return None
        self.events[name] = self.events.get(name, 0) + 1
        if event.state == "up":
            self._set(name, "up", "established")
            return name
        if event.state == "down":
            code = down_reason_code(event.reason)
            detail = event.reason
            if code == "sent_bad_peer_as":  # ExaBGP 5.0 no longer names the AS it saw
                detail += (f": the router's OPEN carries an AS other than the configured"
                           f" {self.peers[name].asn}")
            self._set(name, "down", code, detail)
            return name
        if event.state == "connected":
            self._set(name, "connecting", "tcp_connected", "TCP up, exchanging OPEN")
        return None

    def mark_up(self, name: str) -> bool:
        """ExaBGP reports the peer established (after a bridge respawn)."""
        return self._set(name, "up", "established")

    def mark_not_established(self, name: str) -> bool:
        """ExaBGP does not list the peer as established although we thought it
        was (its `down` event was lost with a bridge); True if that changed."""
        current = self._sessions.get(name)
        if current is None or current.state != "up":
            return False
        return self._set(name, "down", "not_established",
                         "not established after the API process reconnected")

    def exabgp_stopped(self, reason: str) -> None:
        """ExaBGP is not running: nothing is established."""
        for name in self.peers:
            self._set(name, "idle", reason)

    def exabgp_started(self) -> None:
        """ExaBGP runs and will connect (or listen, for passive peers)."""
        for name in self.peers:
            self._set(name, "connecting", "exabgp_started")

    def diagnosed(self, name: str, verdict: Verdict | None) -> None:
        """Apply a socket diagnosis to a peer that is not up."""
        current = self._sessions.get(name)
        if current is None or current.state == "up":
            return
        if verdict is not None:
            self._set(name, current.state, verdict.reason, verdict.detail)
        elif current.reason in DIAGNOSIS_REASONS:
            self._sessions[name] = replace(current, reason="connecting", detail="")

    def is_up(self, name: str) -> bool:
        """Whether the session is established."""
        session = self._sessions.get(name)
        return session is not None and session.state == "up"

    def get(self, name: str) -> Session | None:
        """Session of a peer."""
        return self._sessions.get(name)

    def states(self, announced: Callable[[str], int]) -> dict[str, PeerState]:
        """PeerState per peer name (the seam's view)."""
        out: dict[str, PeerState] = {}
        for name, peer in self.peers.items():
            s = self._sessions[name]
            state = s.state if s.state in ("idle", "connecting", "up", "down") else "idle"
            out[name] = PeerState(name=name, address=str(peer.address),
                                  state=state,  # type: ignore[arg-type]  # checked above
                                  since=s.since, reason=s.reason, announced=announced(name),
                                  detail=s.detail)
        return out
