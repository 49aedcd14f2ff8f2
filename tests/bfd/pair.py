"""Two pure BFD sessions wired back to back on a simulated clock (no sockets, no sleep)."""

from __future__ import annotations

from dataclasses import dataclass, field

from speaker.bfd.packet import ControlPacket, decode
from speaker.bfd.session import Change, Session, Timers


@dataclass
class Pair:
    """Session a and b; `cut` drops what one side sends."""

    a: Session
    b: Session
    now: float = 0.0
    cut_a: bool = False
    cut_b: bool = False
    changes: list[tuple[str, Change]] = field(default_factory=list)
    sent: list[tuple[str, float, ControlPacket]] = field(default_factory=list)

    @classmethod
    def make(cls, ta: Timers, tb: Timers) -> Pair:
        fixed = lambda lo, hi: hi  # noqa: E731 - deterministic jitter: full interval
        return cls(Session(0x1111, ta, 0.0, jitter=fixed), Session(0x2222, tb, 0.0, jitter=fixed))

    def run(self, until: float, step: float = 0.001) -> None:
        """Advance time to `until`, delivering every packet at once (through the codec)."""
        while self.now < until:
            for name, me, other, cut in (("a", self.a, self.b, self.cut_a),
                                         ("b", self.b, self.a, self.cut_b)):
                while me.next_deadline() <= self.now:
                    pkt, change = me.tick(self.now)
                    if change is not None:
                        self.changes.append((name, change))
                    if pkt is None:
                        break
                    self.sent.append((name, self.now, pkt))
                    if not cut:
                        got = other.receive(decode(pkt.encode()), self.now)
                        if got is not None:
                            self.changes.append(("b" if name == "a" else "a", got))
            self.now = round(self.now + step, 6)
