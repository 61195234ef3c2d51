"""The on-disk spool: durable, ordered, survives a crash, never reuses a sequence number."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.spool import Spool, SpoolError


def test_entries_come_back_in_order_and_leave_only_when_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    ids = [spool.append(f"t/{i}", f"m{i}".encode()) for i in range(5)]
    assert ids == sorted(ids) and len(spool) == 5
    first = spool.peek(3)
    assert [e.payload for e in first] == [b"m0", b"m1", b"m2"]
    assert [e.payload for e in spool.peek(10, after_id=first[-1].id)] == [b"m3", b"m4"]
    spool.remove([first[0].id, first[1].id])
    assert [e.topic for e in spool.peek(10)] == ["t/2", "t/3", "t/4"] and len(spool) == 3


def test_a_crash_loses_nothing_and_the_flush_keeps_the_order(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite"
    spool = Spool(path)
    for i in range(100):
        spool.append("walkout/s/n/weight", f"{i}".encode())
    spool.remove([e.id for e in spool.peek(10)])
    del spool  # "crash": no close(), the process is gone
    again = Spool(path)
    assert len(again) == 90
    flushed = []
    while entries := again.peek(7):
        flushed += [int(e.payload) for e in entries]
        again.remove([e.id for e in entries])
    assert flushed == list(range(10, 100))
    assert len(again) == 0


def test_sequence_numbers_are_never_reused_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "seq.sqlite"
    a = Spool(path, seq_block=10)
    first = [a.next_seq() for _ in range(25)]
    a.close()
    b = Spool(path, seq_block=10)
    later = [b.next_seq() for _ in range(5)]
    assert first == list(range(25))
    assert min(later) >= 25 and later == sorted(later)  # a gap is allowed, a repeat is not


def test_a_full_spool_drops_the_oldest_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s.sqlite", max_messages=100)
    for i in range(105):
        spool.append("t", f"{i}".encode())
    assert len(spool) == 100 and spool.peek(1)[0].payload == b"5"
    assert "is full" in caplog.text


def test_an_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SpoolError, match="set spool.path"):
        Spool(blocker / "spool.sqlite")
    (tmp_path / "bad.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(SpoolError, match="cannot open the spool"):
        Spool(tmp_path / "bad.sqlite")
