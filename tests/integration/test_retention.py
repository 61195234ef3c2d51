"""Bounded growth on SQLite and PostgreSQL: retention in batches, dead letters cut to size, the visit
timeout through the real repositories, and ``walkout maintenance prune``."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from store_server.adapters.db import make_engine, make_session_factory, migrate
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.cli import app
from store_server.domain.review import ReviewKind
from store_server.domain.session import SessionState
from store_server.service.housekeeping import RetentionPolicy, prune
from store_server.service.ports import DeadLetter, InboxRow
from tests.unit.test_housekeeping import SESSION, T0, Store, parse_layout_with_camera

pytestmark = pytest.mark.integration


def _row(
    msg_id: str, node: str, ts: float, received_at: float, processed: bool = True, kind: str = "heartbeat"
) -> InboxRow:
    return InboxRow(msg_id, node, kind, f"walkout/t/{node}/{kind}", ts, ts, {}, received_at, processed)


def _fill(factory: sessionmaker[Session], rows: list[InboxRow]) -> None:
    with SqlAlchemyUnitOfWork(factory) as uow:
        for start in range(0, len(rows), 2000):
            uow.inbox.add_many(rows[start : start + 2000])
        uow.commit()


def test_twelve_thousand_old_rows_go_in_bounded_batches_and_recovery_data_stays(session_factory):
    now = 1_000_000.0
    old = [_row(f"cam:{i}", "cam", 1000.0 + i * 0.01, 1000.0 + i * 0.01) for i in range(12_000)]
    keep = [
        _row("shelf:0", "shelf", 1001.0, 1001.0, processed=False),  # not decided yet: never deleted
        _row("gate:0", "gate", 1002.0, 1002.0),  # a node's newest row: its watermark
        _row("cam:recent", "cam", now - 10.0, now - 10.0, kind="tracks"),  # recent event time
    ]
    _fill(session_factory, old + keep)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        marks = uow.inbox.node_watermarks()

    policy = RetentionPolicy(inbox_retention_s=86400.0, keep_event_s=3600.0, batch_rows=5000)
    dry = prune(lambda: SqlAlchemyUnitOfWork(session_factory), policy, now, dry_run=True)
    assert (dry.inbox_rows, dry.inbox_batches) == (12_000, 3)
    report = prune(lambda: SqlAlchemyUnitOfWork(session_factory), policy, now)

    assert (report.inbox_rows, report.inbox_batches, report.more) == (12_000, 3, False)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert uow.inbox.count() == 3
        assert uow.inbox.node_watermarks() == marks  # a restart finds the same watermarks
        assert [r.msg_id for r in uow.inbox.of_kind_since("tracks", now - 120)] == ["cam:recent"]
        assert [r.msg_id for r in uow.inbox.due(now, 10)] == ["shelf:0"]


def test_a_huge_poison_message_is_kept_cut_to_size_with_its_length_and_bounded_fields(session_factory):
    huge = b"[" * 1_048_576
    with SqlAlchemyUnitOfWork(session_factory, dead_letter_max_bytes=1024) as uow:
        # Column limits are enforced on PostgreSQL: an over-long topic or field must not fail the insert.
        uow.dead_letters.add(DeadLetter("walkout/t/" + "x" * 1000, huge, "too deep", "f" * 1000, 5.0))
        uow.dead_letters.add(DeadLetter("walkout/t/n/weight", b"{}", "small", "payload", 6.0))
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        small, big = uow.dead_letters.list()
    assert big.payload == b"[" * 1024
    assert big.reason == "too deep [payload truncated from 1048576 bytes]"
    assert len(big.topic) == 255 and len(big.field) == 255
    assert (small.payload, small.reason) == (b"{}", "small")


def test_old_dead_letters_go_oldest_first_in_batches(session_factory):
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        for i in range(250):
            uow.dead_letters.add(DeadLetter("walkout/t/n/weight", b"x", "bad", "payload", float(i)))
        uow.commit()
    policy = RetentionPolicy(dead_letter_retention_s=100.0, batch_rows=60)
    report = prune(lambda: SqlAlchemyUnitOfWork(session_factory), policy, now=300.0)
    assert (report.dead_letters, report.dead_letter_batches) == (200, 4)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert uow.dead_letters.count() == 50
        assert min(d.received_at for d in uow.dead_letters.list(100)) == 200.0


def test_track_sightings_give_the_latest_time_of_each_track_in_the_window(session_factory):
    def tracks(msg_id: str, ts: float, *ids: str) -> InboxRow:
        points = [{"track_id": t, "x_m": 1.0, "y_m": 1.0} for t in ids]
        return InboxRow(msg_id, "cam", "tracks", "walkout/t/cam/tracks", ts, ts, {"tracks": points}, ts, True)

    _fill(
        session_factory,
        [tracks("cam:1", 10.0, "a", "b"), tracks("cam:2", 20.0, "a"), tracks("cam:3", 30.0, "b")]
        + [tracks(f"cam:{i}", 40.0 + i, "c") for i in range(4, 3000)],
    )
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        seen = uow.inbox.track_sightings(15.0, 3041.0)
    assert seen == {"a": 20.0, "b": 30.0, "c": 3039.0}


def test_a_visit_times_out_through_the_real_repositories_and_after_a_restart(session_factory):
    layout = parse_layout_with_camera()

    def factory() -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(session_factory)

    first = Store(layout, uow_factory=factory)
    first.enter_and_pick()
    first.idle(1000.0)
    again = Store(layout, uow_factory=factory)  # a restart on the same database
    again.seq, again.last_beat = dict(first.seq), first.last_beat
    again.proc.recover()
    again.idle(110.0 + 1799.0)
    assert again.session().state is SessionState.OPEN  # the sighting at t=110 was read back
    again.idle(110.0 + 1801.0)

    session = again.session()
    assert session.state is SessionState.TIMED_OUT and session.exited_at == pytest.approx(T0 + 110.0)
    assert [b.end_reason for b in session.tracks] == ["timeout"]
    (item,) = again.reviews()
    assert item.kind is ReviewKind.VISIT_TIMEOUT and item.session_id == SESSION
    assert [(c["sku"], c["quantity"]) for c in item.evidence["cart"]] == [("cola", 2)]
    with factory() as uow:
        assert uow.receipts.for_session(SESSION) is None
    assert first.payments.calls == again.payments.calls == []


def test_walkout_maintenance_prune_prints_what_it_deletes(db_url, monkeypatch):
    now = time.time()
    rows = [_row(f"cam:{i}", "cam", now - 3 * 86400 + i, now - 3 * 86400 + i) for i in range(300)]
    rows.append(_row("cam:now", "cam", now, now))
    engine = make_engine(db_url)
    migrate(engine)
    try:
        _fill(make_session_factory(engine), rows)
    finally:
        engine.dispose()
    monkeypatch.setenv("WALKOUT_DATABASE_URL", db_url)
    monkeypatch.setenv("WALKOUT_HOUSEKEEPING_BATCH_ROWS", "100")
    runner = CliRunner()

    dry = runner.invoke(app, ["maintenance", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 300 processed rows (3 batches)" in dry.output

    real = runner.invoke(app, ["maintenance", "prune"])
    assert real.exit_code == 0, real.output
    assert "deleted 300 processed rows (3 batches)" in real.output
    again = runner.invoke(app, ["maintenance", "prune"])
    assert "deleted 0 processed rows" in again.output
