"""In-memory fakes of the ports, for fast unit tests of the service layer.

They keep the contracts of the real adapters where a test could tell the difference: repositories
hand out copies (a change is stored only by add/save, as with SQL), the unit of work rolls back to
the last commit, the payment fake is idempotent per key, the backend fake per order id.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from store_server.backend.api import OrderAdjustmentIn, OrderIn, OrderOut, StockLevel
from store_server.domain.accounts import EntryCode
from store_server.domain.receipt import Receipt
from store_server.domain.review import ReceiptCorrection, ReviewItem, ReviewStatus
from store_server.domain.session import SessionState, ShopperSession
from store_server.service.ports import ChargeResult, DeadLetter, InboxRow, OutboxItem

# Aliases: the fakes define a ``list`` method, which shadows the builtin inside their class bodies.
SessionList = list[ShopperSession]
ReceiptList = list[Receipt]
LetterList = list[DeadLetter]


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t

    def set(self, t: float) -> None:
        self.t = t


class FakeInbox:
    def __init__(self) -> None:
        self.rows: dict[str, InboxRow] = {}

    def add_many(self, rows: list[InboxRow]) -> list[InboxRow]:
        new: list[InboxRow] = []
        for row in rows:
            if row.msg_id not in self.rows:
                self.rows[row.msg_id] = row
                new.append(row)
        return new

    def due(self, watermark: float, limit: int) -> list[InboxRow]:
        ready = [r for r in self.rows.values() if not r.processed and r.due <= watermark]
        return sorted(ready, key=lambda r: (r.due, r.ts, r.msg_id))[:limit]

    def mark_processed(self, msg_ids: list[str]) -> None:
        for msg_id in msg_ids:
            if msg_id in self.rows:
                self.rows[msg_id] = dataclasses.replace(self.rows[msg_id], processed=True)

    def postpone(self, msg_id: str, due: float) -> None:
        row = self.rows.get(msg_id)
        if row is not None and row.due < due:
            self.rows[msg_id] = dataclasses.replace(row, due=due)

    def node_watermarks(self) -> dict[str, float]:
        marks: dict[str, float] = {}
        for r in self.rows.values():
            marks[r.node_id] = max(marks.get(r.node_id, r.ts), r.ts)
        return marks

    def of_kind_since(self, kind: str, ts: float) -> list[InboxRow]:
        rows = [r for r in self.rows.values() if r.kind == kind and r.ts >= ts]
        return sorted(rows, key=lambda r: (r.ts, r.msg_id))

    def received_at(self, msg_id: str) -> float | None:
        row = self.rows.get(msg_id)
        return row.received_at if row else None

    def count(self) -> int:
        return len(self.rows)

    def _prunable(self, received_before: float, ts_before: float) -> list[str]:
        newest = self.node_watermarks()
        return [
            r.msg_id
            for r in self.rows.values()
            if r.processed
            and r.due < ts_before
            and r.received_at < received_before
            and r.ts < newest[r.node_id]
        ]

    def prune_processed(self, received_before: float, ts_before: float, limit: int) -> int:
        ids = self._prunable(received_before, ts_before)[:limit]
        for msg_id in ids:
            del self.rows[msg_id]
        return len(ids)

    def count_prunable(self, received_before: float, ts_before: float) -> int:
        return len(self._prunable(received_before, ts_before))

    def track_sightings(self, since: float, until: float) -> dict[str, float]:
        seen: dict[str, float] = {}
        for r in self.of_kind_since("tracks", since):
            if r.ts < until:
                for point in r.payload.get("tracks", []):
                    seen[point["track_id"]] = max(seen.get(point["track_id"], r.ts), r.ts)
        return seen


class FakeSessions:
    def __init__(self) -> None:
        self.by_id: dict[str, ShopperSession] = {}

    def add(self, session: ShopperSession) -> None:
        if session.id in self.by_id:
            raise ValueError(f"session {session.id!r} exists (the database would raise IntegrityError)")
        self.by_id[session.id] = copy.deepcopy(session)

    def get(self, session_id: str) -> ShopperSession | None:
        found = self.by_id.get(session_id)
        return copy.deepcopy(found) if found else None

    def open_sessions(self) -> SessionList:
        found = [s for s in self.by_id.values() if s.state is SessionState.OPEN]
        return [copy.deepcopy(s) for s in sorted(found, key=lambda s: (s.entered_at, s.id))]

    def list(self, state: SessionState | None = None, limit: int = 100) -> SessionList:
        found = [s for s in self.by_id.values() if state is None or s.state == state]
        found.sort(key=lambda s: (s.entered_at, s.id), reverse=True)
        return [copy.deepcopy(s) for s in found[:limit]]

    def save(self, session: ShopperSession) -> None:
        stored = self.by_id.get(session.id)
        if stored is None:
            raise LookupError(f"session {session.id!r} is not stored; add() it first")
        if len(session.changes) < len(stored.changes):
            raise ValueError(f"session {session.id!r} lost cart changes")
        self.by_id[session.id] = copy.deepcopy(session)


class FakeReceipts:
    def __init__(self) -> None:
        self.by_id: dict[str, Receipt] = {}

    def add(self, receipt: Receipt) -> None:
        if receipt.id in self.by_id or self.for_session(receipt.session_id) is not None:
            raise ValueError(f"receipt {receipt.id!r} exists (the database would raise IntegrityError)")
        self.by_id[receipt.id] = receipt  # frozen, so no copy needed

    def get(self, receipt_id: str) -> Receipt | None:
        return self.by_id.get(receipt_id)

    def for_session(self, session_id: str) -> Receipt | None:
        return next((r for r in self.by_id.values() if r.session_id == session_id), None)

    def list(self, limit: int = 100) -> ReceiptList:
        return sorted(self.by_id.values(), key=lambda r: (r.exited_at, r.id), reverse=True)[:limit]


class FakeOutbox:
    def __init__(self) -> None:
        self.items: dict[int, OutboxItem] = {}
        self.sent: set[int] = set()
        self._keys: set[tuple[str, str]] = set()

    def add(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        if (kind, key) in self._keys:
            return
        self._keys.add((kind, key))
        item_id = len(self.items) + 1
        self.items[item_id] = OutboxItem(item_id, kind, key, copy.deepcopy(payload))

    def pending(self, limit: int = 100) -> list[OutboxItem]:
        return [item for i, item in sorted(self.items.items()) if i not in self.sent][:limit]

    def mark_sent(self, item_id: int) -> None:
        self.sent.add(item_id)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: LetterList = []

    def add(self, letter: DeadLetter) -> None:
        self.letters.append(dataclasses.replace(letter, id=len(self.letters) + 1))

    def list(self, limit: int = 100) -> LetterList:
        return list(reversed(self.letters))[:limit]

    def count(self) -> int:
        return len(self.letters)

    def prune(self, received_before: float, limit: int) -> int:
        old = {id(d) for d in [d for d in self.letters if d.received_at < received_before][:limit]}
        self.letters = [d for d in self.letters if id(d) not in old]
        return len(old)

    def count_before(self, received_before: float) -> int:
        return sum(1 for d in self.letters if d.received_at < received_before)


class FakeReviews:
    """Review queue and receipt corrections in memory (issue 6)."""

    def __init__(self) -> None:
        self.by_id: dict[str, ReviewItem] = {}
        self.corrections: dict[str, ReceiptCorrection] = {}

    def add(self, item: ReviewItem) -> bool:
        if item.id in self.by_id:
            return False
        self.by_id[item.id] = copy.deepcopy(item)
        return True

    def get(self, review_id: str) -> ReviewItem | None:
        found = self.by_id.get(review_id)
        return copy.deepcopy(found) if found else None

    def list(self, status: ReviewStatus | None = None, limit: int = 100) -> list[ReviewItem]:
        found = [r for r in self.by_id.values() if status is None or r.status == status]
        found.sort(key=lambda r: (-r.created_at, r.id))
        return [copy.deepcopy(r) for r in found[:limit]]

    def for_sessions(self, session_ids: list[str]) -> list[ReviewItem]:
        found = [r for r in self.by_id.values() if r.session_id in session_ids]
        return [copy.deepcopy(r) for r in sorted(found, key=lambda r: (r.created_at, r.id))]

    def save(self, item: ReviewItem) -> None:
        self.by_id[item.id] = copy.deepcopy(item)

    def add_correction(self, correction: ReceiptCorrection) -> None:
        self.corrections.setdefault(correction.id, correction)

    def corrections_for(self, receipt_ids: list[str]) -> list[ReceiptCorrection]:
        return [c for c in self.corrections.values() if c.receipt_id in receipt_ids]

    def pending_corrections(self) -> list[ReceiptCorrection]:
        return [c for c in self.corrections.values() if c.status == "pending"]

    def set_correction_status(self, correction_id: str, status: str) -> None:
        self.corrections[correction_id] = dataclasses.replace(self.corrections[correction_id], status=status)


class FakeEntryCodes:
    def __init__(self) -> None:
        self.used: dict[str, str] = {}
        self.codes: dict[str, EntryCode] = {}  # what the store issued, by reference

    def issued(self, reference: str) -> EntryCode | None:
        return self.codes.get(reference)

    def use(self, nonce: str, account_token: str, session_id: str, used_at: float) -> str:
        return self.used.setdefault(nonce, session_id)


class FakeUnitOfWork:
    """One shared in-memory database. Leaving the ``with`` block (or rollback) restores the state of
    the last commit, so a handler that forgets to commit loses its writes, as it would with SQL."""

    inbox: FakeInbox
    sessions: FakeSessions
    receipts: FakeReceipts
    outbox: FakeOutbox
    dead_letters: FakeDeadLetters
    reviews: FakeReviews
    entry_codes: FakeEntryCodes

    def __init__(self) -> None:
        self.inbox = FakeInbox()
        self.sessions = FakeSessions()
        self.receipts = FakeReceipts()
        self.outbox = FakeOutbox()
        self.dead_letters = FakeDeadLetters()
        self.reviews = FakeReviews()
        self.entry_codes = FakeEntryCodes()
        self.commits = 0
        self.rollbacks = 0
        self._committed = self._state()

    @property
    def committed(self) -> bool:
        return self.commits > 0

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def commit(self) -> None:
        self.commits += 1
        self._committed = self._state()

    def rollback(self) -> None:
        self.rollbacks += 1
        for name, state in copy.deepcopy(self._committed).items():
            vars(getattr(self, name)).update(state)

    def _state(self) -> dict[str, dict[str, Any]]:
        names = ("inbox", "sessions", "receipts", "outbox", "dead_letters", "reviews", "entry_codes")
        return {name: copy.deepcopy(vars(getattr(self, name))) for name in names}


class FakePaymentGateway:
    """Same contract as the ledger: approved when balance + credit covers the amount; one charge per
    idempotency key; a decline is a result and is not remembered (a retry after a top-up may pass)."""

    def __init__(self, balances: dict[str, int], credit_limits: dict[str, int] | None = None) -> None:
        self.balances = dict(balances)
        self.credit_limits = dict(credit_limits or {})
        self.approved: dict[str, ChargeResult] = {}
        self.calls: list[tuple[str, int, str, str]] = []
        self.outage: Exception | None = None  # set to make the next call raise (gateway down)

    def charge(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        self.calls.append((account_token, amount_cents, currency, idempotency_key))
        if self.outage is not None:
            error, self.outage = self.outage, None
            raise error
        if idempotency_key in self.approved:
            return self.approved[idempotency_key]
        if account_token not in self.balances:
            return ChargeResult("declined", None, "unknown account")
        if self.balances[account_token] + self.credit_limits.get(account_token, 0) < amount_cents:
            return ChargeResult("declined", None, "insufficient funds")
        self.balances[account_token] -= amount_cents
        result = ChargeResult("approved", f"fake-{len(self.approved) + 1}")
        self.approved[idempotency_key] = result
        return result

    def top_up(self, account_token: str, amount_cents: int) -> None:
        self.balances[account_token] = self.balances.get(account_token, 0) + amount_cents


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[Receipt, str]] = []
        self.fail: Exception | None = None  # set to make every send raise until cleared

    def send_receipt(self, receipt: Receipt, text: str) -> str:
        if self.fail is not None:
            raise self.fail
        self.sent.append((receipt, text))
        return f"memory://{receipt.id}"


class FakeBackend:
    """OrderBackend in memory, with the embedded backend's rules (idempotent on order_id; every
    placed order takes its lines off the stock, clamped at 0; unknown skus are left alone)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.orders: dict[str, OrderOut] = {}
        self.stock: dict[tuple[str, str], int] = {}
        self.adjustments: dict[str, OrderAdjustmentIn] = {}
        self.place_calls = 0
        self.fail: Exception | None = None  # set to simulate the backend being down
        self._clock = clock or FakeClock()

    def place_order(self, order: OrderIn) -> OrderOut:
        self.place_calls += 1
        if self.fail is not None:
            raise self.fail
        if order.order_id in self.orders:
            return self.orders[order.order_id]
        stored = OrderOut(**order.model_dump(), created_at=self._clock.now())
        self.orders[order.order_id] = stored
        for line in order.lines:
            key = (order.store_id, line.sku)
            if key in self.stock:
                self.stock[key] = max(0, self.stock[key] - line.quantity)
        return stored

    def get_order(self, order_id: str) -> OrderOut | None:
        return self.orders.get(order_id)

    def adjust_order(self, adjustment: OrderAdjustmentIn) -> bool:
        if adjustment.adjustment_id in self.adjustments:
            return False
        self.adjustments[adjustment.adjustment_id] = adjustment
        for line in adjustment.lines:
            key = (adjustment.store_id, line.sku)
            if key in self.stock:
                self.stock[key] = max(0, self.stock[key] - line.quantity)
        return True

    def list_orders(self, store_id: str, limit: int = 100) -> list[OrderOut]:
        found = [o for o in self.orders.values() if o.store_id == store_id]
        return sorted(found, key=lambda o: (o.placed_at, o.order_id), reverse=True)[:limit]

    def stock_levels(self, store_id: str) -> list[StockLevel]:
        return [
            StockLevel(store_id=s, sku=sku, quantity=q)
            for (s, sku), q in sorted(self.stock.items())
            if s == store_id
        ]

    def set_stock(self, store_id: str, sku: str, quantity: int) -> None:
        if quantity < 0:
            raise ValueError("stock cannot be negative")
        self.stock[(store_id, sku)] = quantity

    def ensure_stock(self, store_id: str, levels: dict[str, int]) -> None:
        for sku, quantity in levels.items():
            self.stock.setdefault((store_id, sku), max(0, quantity))
