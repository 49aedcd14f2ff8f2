"""The RFC 5880 state machine and timers, on a simulated clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speaker.bfd.packet import ControlPacket, Diag, State
from speaker.bfd.session import SLOW_TX_US, Session, Timers
from tests.bfd.pair import Pair

FAST = Timers(100_000, 100_000, 3)
SLOW = Timers(300_000, 300_000, 3)


def intervals(pair: Pair, who: str, after: float) -> list[float]:
    times = [t for name, t, p in pair.sent if name == who and t >= after and not p.final]
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def test_three_way_handshake_then_fast_timers_after_the_poll() -> None:
    pair = Pair.make(FAST, FAST)
    pair.run(3.0)
    assert pair.a.state == pair.b.state == State.UP
    assert [c.new for n, c in pair.changes if n == "a"] in ([State.INIT, State.UP], [State.UP])
    assert not pair.a.poll_active
    assert not pair.b.poll_active
    assert pair.a.tx_interval_us() == 100_000
    assert pair.a.detection_time_us() == 300_000
    assert {round(x, 2) for x in intervals(pair, "a", 2.0)} == {0.1}  # 1 ms simulation steps


def test_slow_rate_until_up() -> None:
    session = Session(1, FAST, 0.0)
    assert session.desired_tx_us == SLOW_TX_US
    pkt, _ = session.tick(0.0)
    assert pkt is not None
    assert pkt.desired_min_tx_us == SLOW_TX_US
    assert pkt.required_min_rx_us == 100_000
    assert pkt.state == State.DOWN


def test_silence_brings_the_session_down_within_the_detection_time() -> None:
    pair = Pair.make(FAST, FAST)
    pair.run(3.0)
    pair.cut_b = True
    cut_at = pair.now
    pair.run(4.0)
    (down,) = [c for n, c in pair.changes if n == "a" and c.new == State.DOWN]
    assert down.diag == Diag.DETECT_EXPIRED
    assert 0.2 <= down.at - cut_at <= 0.301
    assert pair.a.remote_discr == 0
    # b hears a's Down and follows with neighbor_signaled_down
    assert pair.b.state in (State.DOWN, State.INIT)
    assert any(n == "b" and c.diag == Diag.NEIGHBOR_DOWN for n, c in pair.changes)


def test_it_comes_back_when_packets_flow_again() -> None:
    pair = Pair.make(FAST, SLOW)
    pair.run(3.0)
    pair.cut_b = True
    pair.run(4.5)
    pair.cut_b = False
    pair.run(8.0)
    assert pair.a.state == pair.b.state == State.UP
    # tx of a is limited by b's required rx (300 ms): max(desired, remote min rx)
    assert pair.a.tx_interval_us() == 300_000
    assert pair.b.detection_time_us() == 3 * 300_000


def test_timer_change_while_up_uses_a_poll_sequence() -> None:
    pair = Pair.make(SLOW, SLOW)
    pair.run(4.0)
    assert pair.a.tx_interval_us() == 300_000
    pair.a.set_timers(FAST, pair.now)
    assert pair.a.poll_active
    pair.b.set_timers(FAST, pair.now)
    start = pair.now
    pair.run(6.0)
    polls = [p for n, _, p in pair.sent if n == "a" and p.poll]
    finals = [p for n, _, p in pair.sent if n == "b" and p.final]
    assert polls
    assert finals
    assert not any(p.poll and p.final for _, _, p in pair.sent)
    assert not pair.a.poll_active
    assert pair.a.tx_interval_us() == 100_000
    assert {round(x, 2) for x in intervals(pair, "a", start + 1.0)} == {0.1}
    assert [c for _, c in pair.changes if c.at > start] == []  # no flap


def test_slower_tx_waits_for_the_final() -> None:
    session = Session(1, FAST, 0.0)
    peer = ControlPacket(state=State.INIT, my_discriminator=9, your_discriminator=1,
                         desired_min_tx_us=100_000, required_min_rx_us=100_000, detect_mult=3)
    assert session.receive(peer, 0.0) is not None
    assert session.state == State.UP
    session.receive(ControlPacket(State.UP, 9, 1, 100_000, 100_000, 3, final=True), 0.01)
    assert session.tx_interval_us() == 100_000
    session.set_timers(SLOW, 0.02)
    assert session.tx_interval_us() == 100_000  # still fast until the peer confirms
    assert session.detection_time_us() == 3 * 300_000  # more lenient at once
    session.receive(ControlPacket(State.UP, 9, 1, 100_000, 100_000, 3, final=True), 0.03)
    assert session.tx_interval_us() == 300_000


def test_poll_is_answered_at_once_with_final() -> None:
    session = Session(1, FAST, 0.0)
    session.tick(0.0)
    session.receive(ControlPacket(State.DOWN, 9, 0, 1_000_000, 100_000, 3, poll=True), 0.1)
    assert session.next_deadline() == 0.0
    pkt, _ = session.tick(0.1)
    assert pkt is not None
    assert pkt.final
    assert not pkt.poll


def test_admin_down_tells_the_peer_without_a_detection_timeout() -> None:
    pair = Pair.make(FAST, FAST)
    pair.run(3.0)
    change = pair.a.admin_down(pair.now)
    assert change is not None
    assert change.new == State.ADMIN_DOWN
    pair.run(3.1)
    assert pair.b.state == State.DOWN
    assert pair.b.diag == Diag.NEIGHBOR_DOWN


def test_remote_min_rx_zero_stops_periodic_transmission() -> None:
    session = Session(1, FAST, 0.0)
    session.receive(ControlPacket(State.DOWN, 9, 0, 1_000_000, 0, 3), 0.0)
    pkt, _ = session.tick(0.5)
    assert pkt is None


def test_packet_for_another_discriminator_is_ignored() -> None:
    session = Session(1, FAST, 0.0)
    assert session.receive(ControlPacket(State.INIT, 9, 77, 1_000_000, 1, 3), 0.0) is None
    assert session.remote_discr == 0
    assert session.rx_packets == 0


@settings(max_examples=40, deadline=None)
@given(tx=st.sampled_from([50, 100, 300, 1000]), rx=st.sampled_from([50, 100, 300, 1000]),
       mult=st.integers(2, 5))
def test_any_timers_converge_and_never_flap(tx: int, rx: int, mult: int) -> None:
    pair = Pair.make(Timers(tx * 1000, rx * 1000, mult), SLOW)
    pair.run(6.0, step=0.005)
    assert pair.a.state == pair.b.state == State.UP
    ups = [c for _, c in pair.changes if c.new == State.DOWN and c.old == State.UP]
    assert ups == []
    assert pair.a.tx_interval_us() == max(tx * 1000, 300_000)
    assert pair.b.tx_interval_us() == max(300_000, rx * 1000)


@pytest.mark.parametrize("mult", [1, 3])
def test_jitter_bounds(mult: int) -> None:
    seen: list[tuple[float, float]] = []

    def jitter(lo: float, hi: float) -> float:
        seen.append((lo, hi))
        return lo

    session = Session(1, Timers(100_000, 100_000, mult), 0.0, jitter=jitter)
    session.tick(0.0)
    assert seen == [(0.75, 0.9 if mult == 1 else 1.0)]
    assert session.next_tx == pytest.approx(0.75)
