"""One BFD session's state machine and timers (RFC 5880 asynchronous mode), pure.

Time is passed in (monotonic seconds), so every rule is unit tested without
sleeping. The I/O loop (`child.py`) feeds received packets to `receive()`,
calls `tick()` at `next_deadline()`, and sends what `tick()` returns.

Rules implemented: the state table of 6.8.6; detection time = remote multiplier x
max(our RequiredMinRx, the remote's DesiredMinTx) (6.8.4); transmit interval =
max(our DesiredMinTx, remote RequiredMinRx) minus 0-25 % jitter (6.8.7); a
DesiredMinTx of at least 1 s while not Up (6.8.3); timer changes while Up
go through a Poll Sequence (P/F bits) and take effect as 6.8.3 says; a Poll is
answered at once with F. Demand mode and echo are not used.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from speaker.bfd.packet import ControlPacket, Diag, State

SLOW_TX_US = 1_000_000
"""DesiredMinTxInterval while the session is not Up (RFC 5880 6.8.3: at least 1 s)."""


@dataclass(frozen=True, slots=True)
class Timers:
    """What the operator configured for a session (microseconds)."""

    min_tx_us: int
    min_rx_us: int
    multiplier: int


@dataclass(frozen=True, slots=True)
class Change:
    """A state transition of the local session."""

    old: State
    new: State
    diag: Diag
    remote_diag: Diag
    at: float


class Session:
    """bfd.* state variables of one session and the rules that move them."""

    def __init__(self, local_discriminator: int, timers: Timers, now: float,
                 jitter: Callable[[float, float], float] = random.uniform) -> None:
        self.local_discr = local_discriminator
        self.timers = timers
        self.state = State.DOWN
        self.remote_state = State.DOWN
        self.remote_discr = 0
        self.diag = Diag.NONE
        self.remote_diag = Diag.NONE
        self.remote_min_rx_us = 1
        self.remote_desired_tx_us = 0
        self.remote_mult = 0
        self.desired_tx_us = max(SLOW_TX_US, timers.min_tx_us)
        """Advertised bfd.DesiredMinTxInterval."""
        self._tx_used_us = self.desired_tx_us
        self._rx_used_us = timers.min_rx_us
        self.poll_active = False
        self._final_due = False
        self._jitter = jitter
        self.next_tx = now
        self.detect_at: float | None = None
        self.since = now
        self.changes = 0
        self.rx_packets = 0
        self.tx_packets = 0

    # -- derived values -----------------------------------------------------------------

    def tx_interval_us(self) -> int:
        """The periodic transmit interval before jitter (0: do not transmit)."""
        if self.remote_min_rx_us == 0:
            return 0
        return max(self._tx_used_us, self.remote_min_rx_us)

    def detection_time_us(self) -> int:
        """How long without a packet before the session is declared down."""
        return self.remote_mult * max(self._rx_used_us, self.remote_desired_tx_us)

    def next_deadline(self) -> float:
        """The earliest time `tick()` has something to do."""
        if self._final_due:
            return 0.0
        deadline = self.next_tx
        if self.detect_at is not None:
            deadline = min(deadline, self.detect_at)
        return deadline

    # -- inputs ---------------------------------------------------------------------------

    def set_timers(self, timers: Timers, now: float) -> None:
        """Adopt new timers; while Up the peer is told by a Poll Sequence."""
        if timers == self.timers:
            return
        old_tx, old_rx = self._tx_used_us, self._rx_used_us
        self.timers = timers
        if self.state == State.UP:
            self.desired_tx_us = timers.min_tx_us
            # 6.8.3: a slower tx and a faster rx only apply once the poll is answered
            self._tx_used_us = min(old_tx, timers.min_tx_us)
            self._rx_used_us = max(old_rx, timers.min_rx_us)
            self.poll_active = True
            self.next_tx = now
        else:
            self.desired_tx_us = max(SLOW_TX_US, timers.min_tx_us)
            self._tx_used_us = self.desired_tx_us
            self._rx_used_us = timers.min_rx_us

    def receive(self, pkt: ControlPacket, now: float) -> Change | None:
        """Apply a received packet (already decoded and demultiplexed); returns the
        state change it caused, if any."""
        if pkt.your_discriminator not in (0, self.local_discr):
            return None
        self.rx_packets += 1
        self.remote_discr = pkt.my_discriminator
        self.remote_state = pkt.state
        self.remote_diag = pkt.diag
        old_min_rx = self.remote_min_rx_us
        self.remote_min_rx_us = pkt.required_min_rx_us
        self.remote_desired_tx_us = pkt.desired_min_tx_us
        self.remote_mult = pkt.detect_mult
        if pkt.final and self.poll_active:
            self.poll_active = False
            self._tx_used_us = self.desired_tx_us
            self._rx_used_us = self.timers.min_rx_us
        if pkt.poll:
            self._final_due = True
        if self.remote_min_rx_us != old_min_rx:
            interval = self.tx_interval_us()
            if interval and self.next_tx > now + interval / 1e6:
                self.next_tx = now + interval / 1e6
        if self.state == State.ADMIN_DOWN:
            return None
        self.detect_at = now + self.detection_time_us() / 1e6
        new = self._next_state(pkt.state)
        return self._move(new, now) if new is not None else None

    def _next_state(self, remote: State) -> State | None:
        if remote == State.ADMIN_DOWN:
            if self.state != State.DOWN:
                self.diag = Diag.NEIGHBOR_DOWN
                return State.DOWN
            return None
        if self.state == State.DOWN:
            return {State.DOWN: State.INIT, State.INIT: State.UP}.get(remote)
        if self.state == State.INIT:
            return State.UP if remote in (State.INIT, State.UP) else None
        if self.state == State.UP and remote == State.DOWN:
            self.diag = Diag.NEIGHBOR_DOWN
            return State.DOWN
        return None

    def _move(self, new: State, now: float) -> Change:
        old = self.state
        self.state = new
        self.since = now
        self.changes += 1
        if new == State.UP:
            self.diag = Diag.NONE
            self._tx_used_us = self.desired_tx_us  # still the slow rate: the poll lowers it
            if self.timers.min_tx_us != self.desired_tx_us:
                self.desired_tx_us = self.timers.min_tx_us
                self._tx_used_us = min(self._tx_used_us, self.desired_tx_us)
                self.poll_active = True
            self.next_tx = now  # tell the peer at once
        elif new in (State.DOWN, State.ADMIN_DOWN):
            self.desired_tx_us = max(SLOW_TX_US, self.timers.min_tx_us)
            self._tx_used_us = self.desired_tx_us
            self._rx_used_us = self.timers.min_rx_us
            self.poll_active = False
            self.next_tx = now
        return Change(old, new, self.diag, self.remote_diag, now)

    def admin_down(self, now: float) -> Change | None:
        """Stop the session on purpose (peer removed): AdminDown is sent from now on."""
        if self.state == State.ADMIN_DOWN:
            return None
        self.diag = Diag.ADMIN_DOWN
        self.detect_at = None
        return self._move(State.ADMIN_DOWN, now)

    # -- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[ControlPacket | None, Change | None]:
        """Run the timers due at `now`: detection first, then transmission."""
        change = None
        if self.detect_at is not None and now >= self.detect_at:
            self.detect_at = None
            self.remote_discr = 0  # 6.8.1: forget the peer once it is silent
            self.remote_min_rx_us = 1
            self.remote_state = State.DOWN
            if self.state in (State.INIT, State.UP):
                self.diag = Diag.DETECT_EXPIRED
                change = self._move(State.DOWN, now)
        pkt = None
        if self._final_due:
            self._final_due = False
            pkt = self._packet(final=True)
        elif now >= self.next_tx:
            pkt = self._packet(final=False)
            interval = self.tx_interval_us()
            if interval == 0:
                self.next_tx = now + 1.0
                pkt = None
            else:
                high = 0.9 if self.timers.multiplier == 1 else 1.0
                self.next_tx = now + interval / 1e6 * self._jitter(0.75, high)
        if pkt is not None:
            self.tx_packets += 1
        return pkt, change

    def _packet(self, *, final: bool) -> ControlPacket:
        return ControlPacket(
            state=self.state, my_discriminator=self.local_discr,
            your_discriminator=self.remote_discr, desired_min_tx_us=self.desired_tx_us,
            required_min_rx_us=self.timers.min_rx_us, detect_mult=self.timers.multiplier,
            diag=self.diag, poll=self.poll_active and not final, final=final)
