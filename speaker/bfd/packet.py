"""BFD control packets (RFC 5880 section 4.1): encode, decode and the receive checks.

Pure: bytes in, a frozen value out (or the reason the packet is discarded).
Authentication is not implemented, so a packet with the A bit is discarded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
LENGTH = 24
_FORMAT = struct.Struct("!BBBBIIIII")


class State(IntEnum):
    """bfd.SessionState values as carried on the wire."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(IntEnum):
    """Diagnostic codes (RFC 5880 section 4.1)."""

    NONE = 0
    DETECT_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_DOWN = 3
    FORWARDING_RESET = 4
    PATH_DOWN = 5
    CONCAT_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCAT_PATH_DOWN = 8


DIAG_NAMES = {
    Diag.NONE: "none", Diag.DETECT_EXPIRED: "detect_time_expired",
    Diag.ECHO_FAILED: "echo_failed", Diag.NEIGHBOR_DOWN: "neighbor_signaled_down",
    Diag.FORWARDING_RESET: "forwarding_reset", Diag.PATH_DOWN: "path_down",
    Diag.CONCAT_PATH_DOWN: "concatenated_path_down", Diag.ADMIN_DOWN: "admin_down",
    Diag.REVERSE_CONCAT_PATH_DOWN: "reverse_concatenated_path_down",
}
STATE_NAMES = {State.ADMIN_DOWN: "admin_down", State.DOWN: "down", State.INIT: "init",
               State.UP: "up"}

_POLL, _FINAL, _CPI, _AUTH, _DEMAND, _MULTI = 0x20, 0x10, 0x08, 0x04, 0x02, 0x01


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """One BFD control packet; intervals in microseconds as on the wire."""

    state: State
    my_discriminator: int
    your_discriminator: int
    desired_min_tx_us: int
    required_min_rx_us: int
    detect_mult: int
    diag: Diag = Diag.NONE
    poll: bool = False
    final: bool = False
    demand: bool = False
    required_min_echo_rx_us: int = 0

    def encode(self) -> bytes:
        """The 24-byte wire form (no authentication section)."""
        flags = (self.state << 6) | (_POLL if self.poll else 0) | (_FINAL if self.final else 0) \
            | (_DEMAND if self.demand else 0)
        return _FORMAT.pack((VERSION << 5) | int(self.diag), flags, self.detect_mult, LENGTH,
                            self.my_discriminator, self.your_discriminator,
                            self.desired_min_tx_us, self.required_min_rx_us,
                            self.required_min_echo_rx_us)


class DiscardError(Exception):
    """A received packet that RFC 5880 section 6.8.6 says to drop; the text says why."""


def decode(data: bytes) -> ControlPacket:
    """Parse and check a received control packet (the stateless checks of 6.8.6).

    Raises DiscardError with a stable reason when the packet must be dropped."""
    if len(data) < LENGTH:
        raise DiscardError("short_packet")
    vd, flags, mult, length, mine, yours, tx, rx, echo = _FORMAT.unpack_from(data)
    if vd >> 5 != VERSION:
        raise DiscardError("bad_version")
    if flags & _AUTH:
        raise DiscardError("authentication_unsupported")
    if length < LENGTH or length > len(data):
        raise DiscardError("bad_length")
    if mult == 0:
        raise DiscardError("zero_detect_mult")
    if flags & _MULTI:
        raise DiscardError("multipoint_bit")
    if mine == 0:
        raise DiscardError("zero_my_discriminator")
    state = State(flags >> 6)
    if yours == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        raise DiscardError("zero_your_discriminator")
    diag_code = vd & 0x1F
    diag = Diag(diag_code) if diag_code <= max(Diag) else Diag.NONE
    return ControlPacket(state=state, my_discriminator=mine, your_discriminator=yours,
                         desired_min_tx_us=tx, required_min_rx_us=rx, detect_mult=mult,
                         diag=diag, poll=bool(flags & _POLL), final=bool(flags & _FINAL),
                         demand=bool(flags & _DEMAND), required_min_echo_rx_us=echo)
