"""Persistence on both dialects: migrations, the inbox, sessions, receipts, outbox, dead letters."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store_server.adapters import orm
from store_server.adapters.db import alembic_config, make_engine, make_session_factory, migrate
from store_server.adapters.ledger import LedgerGateway
from store_server.adapters.mail import FileMailer
from store_server.adapters.repositories import SqlAlchemySessionRepository
from store_server.adapters.unit_of_work import SqlAlchemyUnitOfWork
from store_server.backend.api import OrderBackend
from store_server.backend.embedded import EmbeddedBackend
from store_server.backend.tables import metadata as backend_metadata
from store_server.domain.pricing import Bill, BillLine
from store_server.domain.receipt import Receipt, receipt_id_for
from store_server.domain.session import CartChange, LineChange, SessionState, ShopperSession
from store_server.service.ports import DeadLetter, InboxRow, Mailer, PaymentGateway, UnitOfWork

pytestmark = pytest.mark.integration

ALL_TABLES = {t for md in (orm.metadata, backend_metadata) for t in md.tables}


def row(node: str, seq: int, ts: float, due: float | None = None, kind: str = "weight") -> InboxRow:
    return InboxRow(
        msg_id=f"{node}:{seq}",
        node_id=node,
        kind=kind,
        topic=f"walkout/s1/{node}/{kind}",
        ts=ts,
        due=ts + 0.5 if due is None else due,
        payload={"seq": seq, "grams": [1.5, -2.25], "nested": {"ok": True}},
        received_at=ts + 0.01,
    )


def test_migrate_creates_everything_and_is_rerunnable(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini, no dependence on the working directory
    migrate(db_url)
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables >= ALL_TABLES
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    finally:
        engine.dispose()


def test_upgrading_from_0001_keeps_each_sessions_track(db_url: str) -> None:
    migrate(db_url, "0001")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, store_id, account_token, track_id, entered_at, state) "
                    "VALUES ('s-1', 'demo', 'acct', 't7', 10.0, 'open')"
                )
            )
        migrate(engine)
        with make_session_factory(engine)() as session:
            loaded = SqlAlchemySessionRepository(session).get("s-1")
        assert loaded is not None and loaded.group_size == 1
        assert [(b.track_id, b.bound_at, b.active) for b in loaded.tracks] == [("t7", 10.0, True)]
    finally:
        engine.dispose()


def test_sqlite_engine_uses_wal(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) > 0
    finally:
        engine.dispose()


def test_no_drift_between_metadata_and_migration(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        # A list of MetaData works like env.py's target_metadata list (the stub says MetaData only).
        diff = compare_metadata(context, [orm.metadata, backend_metadata])  # type: ignore[arg-type]
    assert diff == []


def test_inbox_dedups_within_and_across_batches(session_factory: sessionmaker[Session]) -> None:
    batch = [row("n1", i, 100.0 + i) for i in range(1200)]  # more than one insert chunk
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        new = uow.inbox.add_many(batch + [batch[3], batch[1100]])
        uow.commit()
    assert [r.msg_id for r in new] == [r.msg_id for r in batch]
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        again = uow.inbox.add_many([batch[0], row("n1", 5000, 9000.0), batch[-1]])
        uow.commit()
        assert [r.msg_id for r in again] == ["n1:5000"]
        assert uow.inbox.count() == 1201
        assert uow.inbox.add_many([]) == []
        stored = uow.inbox.due(101.0, 1)[0]
    assert stored == batch[0]  # payload JSON and float times round-trip exactly


def test_inbox_due_orders_by_due_ts_id_and_respects_the_watermark(
    session_factory: sessionmaker[Session],
) -> None:
    rows = [
        row("b", 1, ts=10.0, due=12.0),
        row("a", 1, ts=11.0, due=12.0),
        row("a", 2, ts=11.0, due=12.0),
        row("c", 1, ts=9.0, due=11.0),
        row("c", 2, ts=20.0, due=25.0),
    ]
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.inbox.add_many(rows)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert [r.msg_id for r in uow.inbox.due(12.0, 10)] == ["c:1", "b:1", "a:1", "a:2"]
        assert [r.msg_id for r in uow.inbox.due(12.0, 2)] == ["c:1", "b:1"]
        assert uow.inbox.due(10.9, 10) == []
        uow.inbox.mark_processed(["c:1", "b:1"])
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert [r.msg_id for r in uow.inbox.due(100.0, 10)] == ["a:1", "a:2", "c:2"]
        assert uow.inbox.node_watermarks() == {"a": 11.0, "b": 10.0, "c": 20.0}
        assert uow.inbox.received_at("b:1") == pytest.approx(10.01)
        assert uow.inbox.received_at("nope:1") is None


def test_inbox_of_kind_since(session_factory: sessionmaker[Session]) -> None:
    rows = [row("cam", i, 50.0 + i, kind="tracks") for i in range(5)] + [row("n1", 1, 52.0)]
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.inbox.add_many(list(reversed(rows)))
        uow.commit()
        found = uow.inbox.of_kind_since("tracks", 52.0)
    assert [r.msg_id for r in found] == ["cam:2", "cam:3", "cam:4"]


def test_concurrent_add_many_never_duplicates(session_factory: sessionmaker[Session]) -> None:
    rows = [row("n1", i, float(i)) for i in range(400)]
    got: list[list[InboxRow]] = []
    barrier = threading.Barrier(2)

    def writer(part: list[InboxRow]) -> None:
        barrier.wait()
        with SqlAlchemyUnitOfWork(session_factory) as uow:
            got.append(uow.inbox.add_many(part))
            uow.commit()

    threads = [
        threading.Thread(target=writer, args=(rows[:300],)),
        threading.Thread(target=writer, args=(rows[100:],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    returned = [r.msg_id for part in got for r in part]
    assert sorted(returned) == sorted(r.msg_id for r in rows)  # each new row reported exactly once
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert uow.inbox.count() == 400


def test_one_event_changes_two_lines_with_their_evidence_and_never_twice(
    session_factory: sessionmaker[Session],
) -> None:
    s = ShopperSession("s-two", "s1", "acct-1", entered_at=100.0)
    lines = [LineChange("cola", 1, evidence="planogram"), LineChange("chips", 2, evidence="weight")]
    assert s.apply("n1:9", 101.0, 0.8, lines)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.sessions.add(s)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        loaded = uow.sessions.get("s-two")
        assert loaded is not None and loaded.has_applied("n1:9")
        assert [(c.sku, c.quantity, c.evidence) for c in loaded.changes] == [
            ("cola", 1, "planogram"),
            ("chips", 2, "weight"),
        ]
        # A second worker that decided the same event again cannot store it: the key refuses it.
        loaded.changes.append(CartChange("n1:9", "cola", 1, 101.0, 0.8, "", "planogram"))
        with pytest.raises(IntegrityError):
            uow.sessions.save(loaded)


def test_session_round_trip_with_cart_changes(session_factory: sessionmaker[Session]) -> None:
    s = ShopperSession("s-g1-1", "s1", "acct-1", entered_at=100.0)
    s.take("n1:1", "cola", 2, 101.0, 0.9)
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.sessions.add(s)
        uow.sessions.add(ShopperSession("s-g1-2", "s1", "acct-2", entered_at=105.0))
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        loaded = uow.sessions.get("s-g1-1")
        assert loaded == s
        assert loaded is not None
        loaded.track_id = "t-7"
        loaded.put_back("n1:2", "cola", 1, 102.0, 0.8, note="put back on another shelf")
        loaded.take("n1:3", "chips", 1, 103.0, 0.95)
        uow.sessions.save(loaded)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        again = uow.sessions.get("s-g1-1")
        assert again == loaded
        assert again is not None
        assert [c.event_id for c in again.changes] == ["n1:1", "n1:2", "n1:3"]
        assert again.changes[1].note == "put back on another shelf"
        assert [(line.sku, line.quantity) for line in again.cart()] == [("chips", 1), ("cola", 1)]
        again.leave(110.0, charged=True)
        uow.sessions.save(again)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert [x.id for x in uow.sessions.open_sessions()] == ["s-g1-2"]
        assert [x.id for x in uow.sessions.list()] == ["s-g1-2", "s-g1-1"]  # newest first
        assert [x.id for x in uow.sessions.list(SessionState.PAID)] == ["s-g1-1"]
        assert [x.id for x in uow.sessions.list(limit=1)] == ["s-g1-2"]
        paid = uow.sessions.get("s-g1-1")
        assert paid is not None and paid.state is SessionState.PAID and paid.exited_at == 110.0
        assert uow.sessions.get("missing") is None
        with pytest.raises(LookupError):
            uow.sessions.save(ShopperSession("s-new", "s1", "a", 1.0))


def test_uncommitted_work_is_rolled_back(session_factory: sessionmaker[Session]) -> None:
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.sessions.add(ShopperSession("s-x", "s1", "a", 1.0))
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert uow.sessions.get("s-x") is None


def make_receipt(session_id: str, exited_at: float, status: str = "approved") -> Receipt:
    bill = Bill(
        currency="EUR",
        lines=(
            BillLine("chips", "Potato chips", 1, 199, 199, "food"),
            BillLine("cola", "Cola 0.5 l", 2, 150, 300, "standard"),
        ),
        subtotal_cents=499,
        tax_cents=71,
        total_cents=570,
        tax_by_class=(("food", 14), ("standard", 57)),
    )
    return Receipt(
        id=receipt_id_for(session_id),
        session_id=session_id,
        store_id="s1",
        account_token="acct-1",
        exited_at=exited_at,
        bill=bill,
        payment_status=status,
        charge_id="ledger-1" if status == "approved" else None,
        decline_reason=None if status == "approved" else "insufficient funds",
    )


def test_receipt_round_trip(session_factory: sessionmaker[Session]) -> None:
    first, second = make_receipt("s-a", 200.0), make_receipt("s-b", 300.0, status="declined")
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        for r in (first, second):
            uow.sessions.add(ShopperSession(r.session_id, "s1", "acct-1", 100.0))
            uow.receipts.add(r)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert uow.receipts.get(first.id) == first
        assert uow.receipts.for_session("s-b") == second
        assert uow.receipts.get("r-missing") is None
        assert uow.receipts.list() == [second, first]
        assert uow.receipts.list(limit=1) == [second]


def test_outbox_is_idempotent_per_kind_and_key(session_factory: sessionmaker[Session]) -> None:
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.outbox.add("order", "s-1", {"order_id": "s-1", "total_cents": 570})
        uow.outbox.add("order", "s-1", {"order_id": "s-1", "total_cents": 999})
        uow.outbox.add("receipt_mail", "s-1", {"receipt_id": "r-1"})
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        pending = uow.outbox.pending()
        assert [(i.kind, i.key, i.payload) for i in pending] == [
            ("order", "s-1", {"order_id": "s-1", "total_cents": 570}),
            ("receipt_mail", "s-1", {"receipt_id": "r-1"}),
        ]
        uow.outbox.mark_sent(pending[0].id)
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        assert [i.kind for i in uow.outbox.pending()] == ["receipt_mail"]
        uow.outbox.add("order", "s-1", {"again": True})  # sent already: still not queued twice
        uow.commit()
        assert len(uow.outbox.pending()) == 1


def test_dead_letters_keep_raw_bytes(session_factory: sessionmaker[Session]) -> None:
    raw = b"\xff\xfe not json"
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        uow.dead_letters.add(DeadLetter("walkout/s1/n1/weight", raw, "invalid JSON", "", 5.0))
        uow.dead_letters.add(DeadLetter("walkout/s1/n1/weight", b"{}", "missing field", "seq", 6.0))
        uow.commit()
    with SqlAlchemyUnitOfWork(session_factory) as uow:
        letters = uow.dead_letters.list()
        assert uow.dead_letters.count() == 2
        assert [x.field for x in letters] == ["seq", ""]  # newest first
        assert letters[1].payload == raw and letters[1].reason == "invalid JSON"
        assert all(x.id is not None for x in letters)


def test_adapters_satisfy_the_ports(session_factory: sessionmaker[Session], tmp_path: Path) -> None:
    # The annotations are the test (mypy); the asserts only keep the names used.
    uow: UnitOfWork = SqlAlchemyUnitOfWork(session_factory)
    gateway: PaymentGateway = LedgerGateway(session_factory)
    backend: OrderBackend = EmbeddedBackend(session_factory)
    mailer: Mailer = FileMailer(tmp_path)
    assert all((uow, gateway, backend, mailer))
