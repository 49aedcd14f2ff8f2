"""BFD control packet codec and the stateless receive checks (RFC 5880 4.1, 6.8.6)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speaker.bfd.packet import ControlPacket, Diag, DiscardError, State, decode

GOOD = ControlPacket(state=State.UP, my_discriminator=0xDEADBEEF, your_discriminator=7,
                     desired_min_tx_us=100_000, required_min_rx_us=300_000, detect_mult=3,
                     diag=Diag.DETECT_EXPIRED, poll=True)


def test_wire_layout() -> None:
    raw = GOOD.encode()
    assert len(raw) == 24
    assert raw[0] == (1 << 5) | 1  # version 1, diag 1
    assert raw[1] == (3 << 6) | 0x20  # Up, Poll
    assert raw[2] == 3
    assert raw[3] == 24
    assert struct.unpack("!IIIII", raw[4:]) == (0xDEADBEEF, 7, 100_000, 300_000, 0)


@given(state=st.sampled_from(list(State)), mine=st.integers(1, 2**32 - 1),
       yours=st.integers(1, 2**32 - 1), tx=st.integers(0, 2**32 - 1),
       rx=st.integers(0, 2**32 - 1), mult=st.integers(1, 255),
       diag=st.sampled_from(list(Diag)), poll=st.booleans())
def test_round_trip(state: State, mine: int, yours: int, tx: int, rx: int, mult: int,
                    diag: Diag, poll: bool) -> None:
    pkt = ControlPacket(state, mine, yours, tx, rx, mult, diag=diag, poll=poll, final=not poll)
    assert decode(pkt.encode()) == pkt


def _mutate(index: int, value: int) -> bytes:
    raw = bytearray(GOOD.encode())
    raw[index] = value
    return bytes(raw)


@pytest.mark.parametrize(("data", "reason"), [
    (GOOD.encode()[:20], "short_packet"),
    (_mutate(0, 2 << 5), "bad_version"),
    (_mutate(1, (3 << 6) | 0x04), "authentication_unsupported"),
    (_mutate(1, (3 << 6) | 0x01), "multipoint_bit"),
    (_mutate(2, 0), "zero_detect_mult"),
    (_mutate(3, 40), "bad_length"),
    (_mutate(3, 20), "bad_length"),
    (ControlPacket(State.UP, 0, 1, 1, 1, 3).encode(), "zero_my_discriminator"),
    (ControlPacket(State.UP, 5, 0, 1, 1, 3).encode(), "zero_your_discriminator"),
])
def test_discards(data: bytes, reason: str) -> None:
    with pytest.raises(DiscardError, match=reason):
        decode(data)


def test_down_with_zero_your_discriminator_is_accepted() -> None:
    assert decode(ControlPacket(State.DOWN, 5, 0, 1, 1, 3).encode()).state == State.DOWN
