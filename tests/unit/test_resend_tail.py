"""What an edge publisher sends again after losing the broker: the acknowledgements of its last seconds.

A broker may acknowledge a message before it has saved it; these are the pieces that make a kill -9 in
that gap lose nothing (tests/integration/test_broker_crash.py kills a real Mosquitto).
"""

from __future__ import annotations

from pathlib import Path

from edge.mqtt import AckedTail
from edge.spool import Spool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_tail_holds_what_was_acknowledged_in_the_window_before_the_latest_ack() -> None:
    clock = Clock()
    tail: AckedTail[int] = AckedTail(window_s=5.0, clock=clock)
    for n in range(10):
        tail.add(n)
        clock.now += 1.0
    # Acknowledged at 100..109 s: the latest at 109 s, so 104 s and later are kept.
    assert list(tail) == [4, 5, 6, 7, 8, 9]
    clock.now += 3600  # a broker that died silently: the window is counted from the last PUBACK
    assert tail.take() == [4, 5, 6, 7, 8, 9]
    assert tail.take() == [] and len(tail) == 0


def test_the_tail_is_bounded() -> None:
    tail: AckedTail[int] = AckedTail(window_s=60.0, max_items=3, clock=Clock())
    for n in range(10):
        tail.add(n)
    assert list(tail) == [7, 8, 9]


def test_restored_entries_drain_first_in_their_old_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite")
    ids = [spool.append(f"t/{n}", str(n).encode()) for n in range(5)]
    acked = spool.peek(3)
    spool.remove([e.id for e in acked])
    assert len(spool) == 2
    spool.restore(acked)  # the broker went away right after acknowledging them
    spool.restore(acked[:1])  # twice is once
    assert [e.id for e in spool.peek(10)] == ids and len(spool) == 5
    assert [e.payload for e in spool.peek(10)] == [str(n).encode() for n in range(5)]
    spool.close()
