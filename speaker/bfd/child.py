"""The BFD child process: every BFD session of the appliance, in its own timing domain.

    python -m speaker.bfd.child      (started by `speaker run`, never by hand)

A single-threaded epoll loop with nothing else to do: no config parsing, no
asyncio, no pydantic. It raises itself to SCHED_RR (falling back to nice -10)
and locks its memory so a saturated CPU cannot delay a transmit deadline, and it never blocks on the
parent: frames to the parent are queued and state changes outlive a stalled
reader (stats are dropped first). It reads config frames on stdin and exits when
stdin closes (the parent is gone; PR_SET_PDEATHSIG also kills it).
"""

from __future__ import annotations

import gc
import os
import random
import select
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from speaker.bfd.channel import FrameReader, encode
from speaker.bfd.packet import DIAG_NAMES, STATE_NAMES, ControlPacket, DiscardError, State, decode
from speaker.bfd.session import Change, Session
from speaker.bfd.sockets import Received, family_of, receive, receiver, sender
from speaker.bfd.spec import SessionSpec

STATS_EVERY_S = 1.0
MAX_QUEUED = 1 << 20
RT_PRIORITY = 10
_MCL_CURRENT, _MCL_FUTURE = 1, 2


@dataclass
class Entry:
    """One running session: its spec, state machine and sending socket."""

    spec: SessionSpec
    session: Session
    sock: socket.socket
    discarded: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0
    max_late_s: float = 0.0


def lock_memory() -> bool:
    """mlockall(MCL_CURRENT | MCL_FUTURE), as keepalived's children do: a page fault
    that has to wait for memory must never delay a transmit. False if not allowed."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    return int(libc.mlockall(_MCL_CURRENT | _MCL_FUTURE)) == 0


def raise_priority() -> str:
    """SCHED_RR if allowed, else nice -10, else nothing; returns which."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError):
        pass
    else:
        return f"rr:{RT_PRIORITY}"
    try:
        os.nice(-10)
    except OSError:
        return "normal"
    return "nice:-10"


class Child:
    """Sessions, receivers and the channel to the parent."""

    def __init__(self, out_fd: int, in_fd: int, *, sched: str = "normal") -> None:
        self.out_fd, self.in_fd = out_fd, in_fd
        self.entries: dict[str, Entry] = {}
        self.by_discr: dict[int, Entry] = {}
        self.receivers: dict[tuple[int, int], socket.socket] = {}
        self.by_fd: dict[int, tuple[socket.socket, int]] = {}
        self.reader = FrameReader()
        self.queue = bytearray()
        self.poller = select.epoll()
        os.set_blocking(out_fd, False)
        os.set_blocking(in_fd, False)
        self.poller.register(in_fd, select.EPOLLIN)
        self.poller.register(out_fd, 0)
        self._want_out = False
        self.sched = sched
        self.rng = random.SystemRandom()
        self.next_stats = time.monotonic() + STATS_EVERY_S
        self.unmatched = 0
        self.running = True

    # -- channel --------------------------------------------------------------------------

    def send(self, message: dict[str, Any], *, droppable: bool = False) -> None:
        """Queue a frame for the parent (droppable ones go when the queue is long)."""
        if droppable and len(self.queue) > MAX_QUEUED // 2:
            return
        if len(self.queue) > MAX_QUEUED:
            return  # the parent stopped reading long ago; its supervisor will notice
        was_empty = not self.queue
        self.queue += encode(message)
        if was_empty:
            self.flush()

    def flush(self) -> None:
        """Write what the pipe takes now; wait for EPOLLOUT for the rest."""
        while self.queue:
            try:
                n = os.write(self.out_fd, self.queue)
            except BlockingIOError:
                break
            except BrokenPipeError:
                self.running = False
                return
            del self.queue[:n]
        want = bool(self.queue)
        if want != self._want_out:
            self.poller.modify(self.out_fd, select.EPOLLOUT if want else 0)
            self._want_out = want

    def on_input(self) -> None:
        """Config frames from the parent; EOF means the parent is gone."""
        try:
            data = os.read(self.in_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.running = False
            return
        for message in self.reader.feed(data):
            if message["t"] == "config":
                self.configure([SessionSpec.from_json(s) for s in message["sessions"]],
                               time.monotonic())

    # -- sessions -------------------------------------------------------------------------

    def configure(self, specs: list[SessionSpec], now: float) -> None:
        """Make the running sessions exactly `specs` (timers change live)."""
        wanted = {s.peer: s for s in specs}
        for name, old in list(self.entries.items()):
            spec = wanted.get(name)
            if spec is None or spec.identity != old.spec.identity:
                self._remove(old, now)
        for name, spec in wanted.items():
            running = self.entries.get(name)
            if running is not None:
                running.spec = spec
                running.session.set_timers(spec.timers(), now)
                continue
            try:
                self._add(spec, now)
            except OSError as exc:
                self.send({"t": "error", "peer": name, "error": f"{exc.strerror or exc}",
                           "reason": "bfd_socket_failed"})

    def _add(self, spec: SessionSpec, now: float) -> None:
        family = family_of(spec.address)
        key = (int(family), spec.port)
        if key not in self.receivers:
            rx = receiver(family, spec.port)
            self.receivers[key] = rx
            self.by_fd[rx.fileno()] = (rx, spec.port)
            self.poller.register(rx.fileno(), select.EPOLLIN)
        tx = sender(spec.local, spec.address)
        discr = self.rng.randrange(1, 1 << 32)
        while discr in self.by_discr:
            discr = self.rng.randrange(1, 1 << 32)
        entry = Entry(spec, Session(discr, spec.timers(), now, jitter=self.rng.uniform), tx)
        self.entries[spec.peer] = entry
        self.by_discr[discr] = entry
        self._report(entry, Change(State.DOWN, State.DOWN, entry.session.diag,
                                   entry.session.remote_diag, now))

    def _remove(self, entry: Entry, now: float) -> None:
        change = entry.session.admin_down(now)
        pkt, _ = entry.session.tick(now)
        if pkt is not None:
            self._transmit(entry, pkt)
        entry.sock.close()
        del self.entries[entry.spec.peer]
        del self.by_discr[entry.session.local_discr]
        if change is not None:
            self._report(entry, change, removed=True)

    def _report(self, entry: Entry, change: Change, *, removed: bool = False) -> None:
        self.send({"t": "state", "peer": entry.spec.peer, "old": STATE_NAMES[change.old],
                   "new": STATE_NAMES[change.new], "diag": DIAG_NAMES[change.diag],
                   "remote_diag": DIAG_NAMES[change.remote_diag], "wall": time.time(),
                   "changes": entry.session.changes, "removed": removed})

    def _transmit(self, entry: Entry, pkt: ControlPacket) -> None:
        try:
            entry.sock.sendto(pkt.encode(), (entry.spec.address, entry.spec.port))
        except OSError:
            entry.send_errors += 1  # link down, no route: the session times out by itself

    def on_datagram(self, got: Received, port: int, now: float) -> None:
        """Demultiplex (RFC 5880 6.8.6, RFC 5881 5, RFC 5883 2) and apply one packet."""
        try:
            pkt = decode(got.data)
        except DiscardError:
            self.unmatched += 1
            return
        entry = self.by_discr.get(pkt.your_discriminator) if pkt.your_discriminator else next(
            (e for e in self.entries.values()
             if e.spec.address == got.source and e.spec.port == port), None)
        if entry is None or entry.spec.address != got.source or entry.spec.port != port:
            self.unmatched += 1
            return
        if got.ttl < entry.spec.min_ttl:
            entry.discarded["ttl"] = entry.discarded.get("ttl", 0) + 1
            return
        change = entry.session.receive(pkt, now)
        if change is not None:
            self._report(entry, change)

    def run_timers(self, now: float) -> None:
        """Detection and transmission for every session that is due."""
        for entry in list(self.entries.values()):
            session = entry.session
            while session.next_deadline() <= now:
                scheduled = session.next_tx
                pkt, change = session.tick(now)
                if change is not None:
                    self._report(entry, change)
                if pkt is not None:
                    if not pkt.final:
                        entry.max_late_s = max(entry.max_late_s, now - scheduled)
                    self._transmit(entry, pkt)
                if pkt is None and change is None:
                    break

    def stats(self) -> None:
        """Per session state, counters and timers (every STATS_EVERY_S)."""
        sessions = {}
        for name, e in self.entries.items():
            s = e.session
            sessions[name] = {
                "state": STATE_NAMES[s.state], "remote_state": STATE_NAMES[s.remote_state],
                "diag": DIAG_NAMES[s.diag], "remote_diag": DIAG_NAMES[s.remote_diag],
                "local_discr": s.local_discr, "remote_discr": s.remote_discr,
                "tx_interval_ms": s.tx_interval_us() / 1000,
                "detect_time_ms": s.detection_time_us() / 1000,
                "remote_min_rx_ms": s.remote_min_rx_us / 1000,
                "remote_min_tx_ms": s.remote_desired_tx_us / 1000,
                "remote_multiplier": s.remote_mult, "changes": s.changes,
                "tx": s.tx_packets, "rx": s.rx_packets, "send_errors": e.send_errors,
                "discarded": dict(e.discarded), "max_tx_late_ms": round(e.max_late_s * 1000, 3),
                "source_port": e.sock.getsockname()[1], "poll": s.poll_active}
            e.max_late_s = 0.0
        self.send({"t": "stats", "sessions": sessions, "unmatched": self.unmatched},
                  droppable=True)

    # -- loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Until stdin closes."""
        self.send({"t": "hello", "pid": os.getpid(), "sched": self.sched})
        while self.running:
            now = time.monotonic()
            deadline = min([self.next_stats, *(e.session.next_deadline()
                                               for e in self.entries.values())])
            for fd, mask in self.poller.poll(max(0.0, deadline - now)):
                if fd == self.in_fd:
                    self.on_input()
                elif fd == self.out_fd and mask & select.EPOLLOUT:
                    self.flush()
                elif fd in self.by_fd:
                    sock, port = self.by_fd[fd]
                    while (got := receive(sock)) is not None:
                        self.on_datagram(got, port, time.monotonic())
            now = time.monotonic()
            self.run_timers(now)
            if now >= self.next_stats:
                self.next_stats = now + STATS_EVERY_S
                self.stats()


def main() -> int:
    """Entry point of `python -m speaker.bfd.child`."""
    sched = raise_priority() + (",mlock" if lock_memory() else "")
    gc.collect()
    gc.freeze()  # start-up objects never need scanning: shorter GC pauses
    Child(sys.stdout.fileno(), sys.stdin.fileno(), sched=sched).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
