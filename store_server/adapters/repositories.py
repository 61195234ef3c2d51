"""SQLAlchemy implementations of the repository ports. They speak Core SQL on the unit of work's
``Session`` and hand back plain domain objects, so nothing outside this package sees a row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, and_, delete, false, func, select, true, update
from sqlalchemy.orm import Session

from store_server.adapters import orm
from store_server.adapters.db import dialect_insert
from store_server.domain.pricing import Bill, BillLine
from store_server.domain.receipt import Receipt
from store_server.domain.session import CartChange, SessionState, ShopperSession, TrackBinding
from store_server.service.ports import DeadLetter, InboxRow, OutboxItem

Now = Callable[[], float]
# Aliases because the repositories define a ``list`` method, which shadows the builtin for mypy.
SessionList = list[ShopperSession]
ReceiptList = list[Receipt]
BillLines = list[BillLine]
T = TypeVar("T")

# Rows per statement: 500 x 9 columns stays far below SQLite's 32766 and PostgreSQL's 65535
# bound-parameter limits while keeping one round trip for a typical batch.
CHUNK = 500
# A dead letter keeps this much of its raw payload: enough to see what was wrong, while a flood of
# megabyte-sized poison messages cannot fill the disk. The original size goes into the reason.
DEAD_LETTER_PAYLOAD_MAX_BYTES = 4096
DEAD_LETTER_REASON_MAX_CHARS = 2000


def _chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlAlchemyInboxRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_many(self, rows: list[InboxRow]) -> list[InboxRow]:
        unique: dict[str, InboxRow] = {}
        for row in rows:
            unique.setdefault(row.msg_id, row)  # a redelivery inside one batch keeps the first copy
        if not unique:
            return []
        values = [
            {
                "msg_id": r.msg_id,
                "node_id": r.node_id,
                "kind": r.kind,
                "topic": r.topic,
                "ts": r.ts,
                "due": r.due,
                "payload": r.payload,
                "received_at": r.received_at,
                "processed": r.processed,
            }
            for r in unique.values()
        ]
        inserted: set[str] = set()
        conn = self._s.connection()
        for chunk in _chunks(values):
            # ON CONFLICT DO NOTHING ... RETURNING reports exactly the rows this transaction inserted;
            # a concurrent writer of the same msg_id waits on the unique index, so no row is returned
            # twice and none is duplicated.
            stmt = (
                dialect_insert(conn, orm.inbox_messages)
                .values(list(chunk))
                .on_conflict_do_nothing(index_elements=["msg_id"])
                .returning(orm.inbox_messages.c.msg_id)
            )
            inserted.update(conn.execute(stmt).scalars())
        return [r for r in unique.values() if r.msg_id in inserted]

    def due(self, watermark: float, limit: int) -> list[InboxRow]:
        t = orm.inbox_messages
        stmt = (
            select(t)
            .where(
                t.c.processed == false(), t.c.due <= watermark
            )  # "= false" is indexable; "IS" is not on PG
            .order_by(t.c.due, t.c.ts, t.c.msg_id)
            .limit(limit)
        )
        return [_inbox_row(r) for r in self._s.execute(stmt)]

    def mark_processed(self, msg_ids: list[str]) -> None:
        t = orm.inbox_messages
        for chunk in _chunks(list(dict.fromkeys(msg_ids))):
            self._s.execute(update(t).where(t.c.msg_id.in_(chunk)).values(processed=True))

    def postpone(self, msg_id: str, due: float) -> None:
        t = orm.inbox_messages
        self._s.execute(update(t).where(t.c.msg_id == msg_id, t.c.due < due).values(due=due))

    def node_watermarks(self) -> dict[str, float]:
        t = orm.inbox_messages
        stmt = select(t.c.node_id, func.max(t.c.ts)).group_by(t.c.node_id)
        return {node: float(ts) for node, ts in self._s.execute(stmt)}

    def of_kind_since(self, kind: str, ts: float) -> list[InboxRow]:
        t = orm.inbox_messages
        stmt = select(t).where(t.c.kind == kind, t.c.ts >= ts).order_by(t.c.ts, t.c.msg_id)
        return [_inbox_row(r) for r in self._s.execute(stmt)]

    def received_at(self, msg_id: str) -> float | None:
        t = orm.inbox_messages
        return self._s.execute(select(t.c.received_at).where(t.c.msg_id == msg_id)).scalar_one_or_none()

    def count(self) -> int:
        return self._s.execute(select(func.count()).select_from(orm.inbox_messages)).scalar_one()

    # -- retention ------------------------------------------------------------------------------
    def _prunable(self, received_before: float, ts_before: float) -> Any:
        t = orm.inbox_messages
        newest = orm.inbox_messages.alias("newest")
        newest_of_node = (
            select(func.max(newest.c.ts)).where(newest.c.node_id == t.c.node_id).scalar_subquery()
        )
        # due >= ts, so "due < ts_before" bounds ts too and walks the pending index (processed, due).
        # The newest row of each node stays: the watermarks are rebuilt from it after a restart.
        return and_(
            t.c.processed == true(),
            t.c.due < ts_before,
            t.c.received_at < received_before,
            t.c.ts < newest_of_node,
        )

    def prune_processed(self, received_before: float, ts_before: float, limit: int) -> int:
        t = orm.inbox_messages
        ids = list(
            self._s.execute(
                select(t.c.msg_id).where(self._prunable(received_before, ts_before)).limit(limit)
            ).scalars()
        )
        for chunk in _chunks(ids):
            self._s.execute(delete(t).where(t.c.msg_id.in_(chunk)))
        return len(ids)

    def count_prunable(self, received_before: float, ts_before: float) -> int:
        t = orm.inbox_messages
        stmt = select(func.count()).select_from(t).where(self._prunable(received_before, ts_before))
        return int(self._s.execute(stmt).scalar_one())

    def track_sightings(self, since: float, until: float) -> dict[str, float]:
        t = orm.inbox_messages
        stmt = (
            select(t.c.ts, t.c.payload)
            .where(t.c.kind == "tracks", t.c.ts >= since, t.c.ts < until)
            .execution_options(yield_per=1000)  # streamed: a recovery never holds the whole window
        )
        seen: dict[str, float] = {}
        for ts, payload in self._s.execute(stmt):
            for point in payload.get("tracks", []):
                track_id = point["track_id"]
                if ts > seen.get(track_id, float("-inf")):
                    seen[track_id] = float(ts)
        return seen


def _inbox_row(r: Row[Any]) -> InboxRow:
    return InboxRow(
        msg_id=r.msg_id,
        node_id=r.node_id,
        kind=r.kind,
        topic=r.topic,
        ts=r.ts,
        due=r.due,
        payload=r.payload,
        received_at=r.received_at,
        processed=bool(r.processed),
    )


class SqlAlchemySessionRepository:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, session: ShopperSession) -> None:
        self._s.execute(orm.sessions.insert().values(**_session_values(session)))
        self._insert_changes(session.id, session.changes, start=0)
        self._write_tracks(session)

    def get(self, session_id: str) -> ShopperSession | None:
        found = self._load(select(orm.sessions).where(orm.sessions.c.id == session_id))
        return found[0] if found else None

    def open_sessions(self) -> SessionList:
        t = orm.sessions
        return self._load(
            select(t).where(t.c.state == SessionState.OPEN.value).order_by(t.c.entered_at, t.c.id)
        )

    def list(self, state: SessionState | None = None, limit: int = 100) -> SessionList:
        t = orm.sessions
        stmt = select(t).order_by(t.c.entered_at.desc(), t.c.id.desc()).limit(limit)
        if state is not None:
            stmt = stmt.where(t.c.state == SessionState(state).value)
        return self._load(stmt)

    def save(self, session: ShopperSession) -> None:
        t, c = orm.sessions, orm.cart_changes
        result = self._s.execute(update(t).where(t.c.id == session.id).values(**_session_values(session)))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise LookupError(f"session {session.id!r} is not stored; add() it first")
        # Changes are append-only, so the next position tells which ones are new.
        stored = self._s.execute(
            select(func.count()).select_from(c).where(c.c.session_id == session.id)
        ).scalar_one()
        if stored > len(session.changes):
            raise ValueError(f"session {session.id!r} lost cart changes ({len(session.changes)} < {stored})")
        self._insert_changes(session.id, session.changes[stored:], start=stored)
        self._write_tracks(session)

    def _write_tracks(self, session: ShopperSession) -> None:
        # A handful of rows per session: rewriting them is simpler than diffing.
        t = orm.session_tracks
        self._s.execute(delete(t).where(t.c.session_id == session.id))
        if session.tracks:
            self._s.execute(
                t.insert(),
                [
                    {
                        "session_id": session.id,
                        "track_id": b.track_id,
                        "bound_at": b.bound_at,
                        "ended_at": b.ended_at,
                        "end_reason": b.end_reason,
                    }
                    for b in session.tracks
                ],
            )

    def _insert_changes(self, session_id: str, changes: Sequence[CartChange], start: int) -> None:
        if not changes:
            return
        rows = [
            {
                "session_id": session_id,
                "position": start + i,
                "event_id": ch.event_id,
                "sku": ch.sku,
                "quantity": ch.quantity,
                "at": ch.at,
                "confidence": ch.confidence,
                "note": ch.note,
                "evidence": ch.evidence,
            }
            for i, ch in enumerate(changes)
        ]
        self._s.execute(orm.cart_changes.insert(), rows)

    def _load(self, stmt: Any) -> SessionList:
        sessions = [
            ShopperSession(
                id=r.id,
                store_id=r.store_id,
                account_token=r.account_token,
                entered_at=r.entered_at,
                track_id=r.track_id,
                exited_at=r.exited_at,
                state=SessionState(r.state),
                group_size=r.group_size,
                tracks=[],
            )
            for r in self._s.execute(stmt)
        ]
        by_id = {s.id: s for s in sessions}
        c = orm.cart_changes
        for chunk in _chunks(list(by_id)):  # one query per chunk, not one per session
            rows = self._s.execute(
                select(c).where(c.c.session_id.in_(chunk)).order_by(c.c.session_id, c.c.position)
            )
            for r in rows:
                by_id[r.session_id].changes.append(
                    CartChange(r.event_id, r.sku, r.quantity, r.at, r.confidence, r.note, r.evidence)
                )
            tt = orm.session_tracks
            bindings = self._s.execute(
                select(tt)
                .where(tt.c.session_id.in_(chunk))
                .order_by(tt.c.session_id, tt.c.bound_at, tt.c.track_id)
            )
            for b in bindings:
                by_id[b.session_id].tracks.append(
                    TrackBinding(b.track_id, b.bound_at, b.ended_at, b.end_reason)
                )
        return sessions


def _session_values(s: ShopperSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "store_id": s.store_id,
        "account_token": s.account_token,
        "track_id": s.track_id,
        "entered_at": s.entered_at,
        "exited_at": s.exited_at,
        "state": SessionState(s.state).value,
        "group_size": s.group_size,
    }


class SqlAlchemyReceiptRepository:
    def __init__(self, session: Session, now: Now) -> None:
        self._s = session
        self._now = now

    def add(self, receipt: Receipt) -> None:
        bill = receipt.bill
        self._s.execute(
            orm.receipts.insert().values(
                id=receipt.id,
                session_id=receipt.session_id,
                store_id=receipt.store_id,
                account_token=receipt.account_token,
                exited_at=receipt.exited_at,
                currency=bill.currency,
                subtotal_cents=bill.subtotal_cents,
                tax_cents=bill.tax_cents,
                total_cents=bill.total_cents,
                tax_by_class=[[cls, cents] for cls, cents in bill.tax_by_class],
                payment_status=receipt.payment_status,
                charge_id=receipt.charge_id,
                decline_reason=receipt.decline_reason,
                issued_at=self._now(),
            )
        )
        if bill.lines:
            lines = [
                {
                    "receipt_id": receipt.id,
                    "position": i,
                    "sku": ln.sku,
                    "name": ln.name,
                    "quantity": ln.quantity,
                    "unit_price_cents": ln.unit_price_cents,
                    "amount_cents": ln.amount_cents,
                    "tax_class": ln.tax_class,
                }
                for i, ln in enumerate(bill.lines)
            ]
            self._s.execute(orm.receipt_lines.insert(), lines)

    def get(self, receipt_id: str) -> Receipt | None:
        found = self._load(select(orm.receipts).where(orm.receipts.c.id == receipt_id))
        return found[0] if found else None

    def for_session(self, session_id: str) -> Receipt | None:
        found = self._load(select(orm.receipts).where(orm.receipts.c.session_id == session_id))
        return found[0] if found else None

    def list(self, limit: int = 100) -> ReceiptList:
        t = orm.receipts
        return self._load(select(t).order_by(t.c.exited_at.desc(), t.c.id.desc()).limit(limit))

    def _load(self, stmt: Any) -> ReceiptList:
        heads = list(self._s.execute(stmt))
        lines: dict[str, BillLines] = {h.id: [] for h in heads}
        t = orm.receipt_lines
        for chunk in _chunks(list(lines)):
            for r in self._s.execute(
                select(t).where(t.c.receipt_id.in_(chunk)).order_by(t.c.receipt_id, t.c.position)
            ):
                lines[r.receipt_id].append(
                    BillLine(r.sku, r.name, r.quantity, r.unit_price_cents, r.amount_cents, r.tax_class)
                )
        return [_receipt(h, lines[h.id]) for h in heads]


def _receipt(h: Row[Any], lines: Iterable[BillLine]) -> Receipt:
    bill = Bill(
        currency=h.currency,
        lines=tuple(lines),
        subtotal_cents=h.subtotal_cents,
        tax_cents=h.tax_cents,
        total_cents=h.total_cents,
        tax_by_class=tuple((str(cls), int(cents)) for cls, cents in h.tax_by_class),
    )
    return Receipt(
        id=h.id,
        session_id=h.session_id,
        store_id=h.store_id,
        account_token=h.account_token,
        exited_at=h.exited_at,
        bill=bill,
        payment_status=h.payment_status,
        charge_id=h.charge_id,
        decline_reason=h.decline_reason,
    )


class SqlAlchemyOutboxRepository:
    def __init__(self, session: Session, now: Now) -> None:
        self._s = session
        self._now = now

    def add(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        stmt = (
            dialect_insert(self._s, orm.outbox)
            .values(kind=kind, key=key, payload=payload, created_at=self._now())
            .on_conflict_do_nothing(index_elements=["kind", "key"])
        )
        self._s.execute(stmt)

    def pending(self, limit: int = 100) -> list[OutboxItem]:
        t = orm.outbox
        stmt = select(t).where(t.c.sent_at.is_(None)).order_by(t.c.id).limit(limit)
        return [OutboxItem(r.id, r.kind, r.key, r.payload) for r in self._s.execute(stmt)]

    def mark_sent(self, item_id: int) -> None:
        t = orm.outbox
        self._s.execute(update(t).where(t.c.id == item_id, t.c.sent_at.is_(None)).values(sent_at=self._now()))


class SqlAlchemyDeadLetterRepository:
    def __init__(self, session: Session, max_payload_bytes: int = DEAD_LETTER_PAYLOAD_MAX_BYTES) -> None:
        self._s = session
        self._max_payload = max_payload_bytes

    def add(self, letter: DeadLetter) -> None:
        # Everything here came from outside: bounded to the columns, so storing a bad message can
        # never fail (String(255) is enforced on PostgreSQL) and never takes more than a few KB.
        payload = bytes(letter.payload)
        reason = letter.reason[:DEAD_LETTER_REASON_MAX_CHARS]
        if len(payload) > self._max_payload:
            reason += f" [payload truncated from {len(payload)} bytes]"
            payload = payload[: self._max_payload]
        self._s.execute(
            orm.dead_letters.insert().values(
                topic=letter.topic[:255],
                payload=payload,
                reason=reason,
                field=letter.field[:255],
                received_at=letter.received_at,
            )
        )

    def list(self, limit: int = 100) -> list[DeadLetter]:
        t = orm.dead_letters
        rows = self._s.execute(select(t).order_by(t.c.id.desc()).limit(limit))
        return [DeadLetter(r.topic, bytes(r.payload), r.reason, r.field, r.received_at, r.id) for r in rows]

    def count(self) -> int:
        return self._s.execute(select(func.count()).select_from(orm.dead_letters)).scalar_one()

    def prune(self, received_before: float, limit: int) -> int:
        t = orm.dead_letters
        # Ids grow with arrival, so the oldest letters are found first along the primary key.
        ids = list(
            self._s.execute(
                select(t.c.id).where(t.c.received_at < received_before).order_by(t.c.id).limit(limit)
            ).scalars()
        )
        for chunk in _chunks(ids):
            self._s.execute(delete(t).where(t.c.id.in_(chunk)))
        return len(ids)

    def count_before(self, received_before: float) -> int:
        t = orm.dead_letters
        stmt = select(func.count()).select_from(t).where(t.c.received_at < received_before)
        return int(self._s.execute(stmt).scalar_one())
