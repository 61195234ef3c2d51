"""The ports of the store server: small Protocols, each with a real adapter and an in-memory fake.

Wired together in ``store_server.bootstrap``; nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from store_server.domain.accounts import EntryCode
from store_server.domain.receipt import Receipt
from store_server.domain.review import ReceiptCorrection, ReviewItem, ReviewStatus
from store_server.domain.session import SessionState, ShopperSession


@dataclass(frozen=True)
class InboxRow:
    """One accepted MQTT message as stored before it is acknowledged."""

    msg_id: str  # node_id:seq
    node_id: str
    kind: str  # weight | tracks | detections | gate | heartbeat
    topic: str
    ts: float  # event time (publish time at the node)
    due: float  # event time at which it may be decided (ts + the wait for late evidence)
    payload: dict[str, Any]
    received_at: float  # wall clock, for latency metrics only, never for decisions
    processed: bool = False


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    payload: bytes
    reason: str
    field: str
    received_at: float
    id: int | None = None


@dataclass(frozen=True)
class ChargeResult:
    status: Literal["approved", "declined"]
    charge_id: str | None
    reason: str | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str  # "order"
    key: str  # idempotency key (the session id)
    payload: dict[str, Any]


class InboxRepository(Protocol):
    def add_many(self, rows: list[InboxRow]) -> list[InboxRow]:
        """Insert the rows whose msg_id is new; return those (the duplicates are dropped)."""

    def due(self, watermark: float, limit: int) -> list[InboxRow]:
        """Unprocessed rows with due <= watermark, ordered by (due, ts, msg_id)."""

    def mark_processed(self, msg_ids: list[str]) -> None: ...

    def postpone(self, msg_id: str, due: float) -> None:
        """Decide the row again at ``due`` (later than its due now): it waits for more evidence."""

    def node_watermarks(self) -> dict[str, float]:
        """Highest ts seen per node (rebuilds the watermarks after a restart)."""

    def of_kind_since(self, kind: str, ts: float) -> list[InboxRow]:
        """Rows of one kind with ts >= ts, ordered by ts (rebuilds the track history)."""

    def received_at(self, msg_id: str) -> float | None: ...

    def count(self) -> int: ...

    def prune_processed(self, received_before: float, ts_before: float, limit: int) -> int:
        """Delete up to ``limit`` processed rows received before ``received_before`` with event time
        (and due time) before ``ts_before``, never the newest row of a node; return how many."""

    def count_prunable(self, received_before: float, ts_before: float) -> int:
        """How many rows :meth:`prune_processed` would delete with no limit."""

    def track_sightings(self, since: float, until: float) -> dict[str, float]:
        """Latest event time of each track id in the tracks rows with since <= ts < until."""


class SessionRepository(Protocol):
    def add(self, session: ShopperSession) -> None: ...

    def get(self, session_id: str) -> ShopperSession | None: ...

    def open_sessions(self) -> list[ShopperSession]: ...

    def list(self, state: SessionState | None = None, limit: int = 100) -> list[ShopperSession]: ...

    def save(self, session: ShopperSession) -> None:
        """Persist changes made to a session obtained from this repository."""


class ReceiptRepository(Protocol):
    def add(self, receipt: Receipt) -> None: ...

    def get(self, receipt_id: str) -> Receipt | None: ...

    def for_session(self, session_id: str) -> Receipt | None: ...

    def list(self, limit: int = 100) -> list[Receipt]: ...


class OutboxRepository(Protocol):
    def add(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        """Queue a message for the backend; a second add with the same (kind, key) is ignored."""

    def pending(self, limit: int = 100) -> list[OutboxItem]: ...

    def mark_sent(self, item_id: int) -> None: ...


class DeadLetterRepository(Protocol):
    def add(self, letter: DeadLetter) -> None:
        """Store a rejected message; a payload over the configured size is cut, its length noted."""

    def list(self, limit: int = 100) -> list[DeadLetter]: ...

    def count(self) -> int: ...

    def prune(self, received_before: float, limit: int) -> int:
        """Delete up to ``limit`` of the oldest letters received before ``received_before``."""

    def count_before(self, received_before: float) -> int: ...


ReviewList = list[ReviewItem]  # aliases: the repositories' ``list`` method shadows the builtin
CorrectionList = list[ReceiptCorrection]


class ReviewRepository(Protocol):
    """The staff review queue and the receipt corrections its resolutions produce (issue 6)."""

    def add(self, item: ReviewItem) -> bool:
        """Store a new item; False (and nothing changes) when its id exists (a replayed decision)."""

    def get(self, review_id: str) -> ReviewItem | None: ...

    def list(self, status: ReviewStatus | None = None, limit: int = 100) -> ReviewList: ...

    def for_sessions(self, session_ids: Sequence[str]) -> ReviewList: ...

    def save(self, item: ReviewItem) -> None: ...

    def add_correction(self, correction: ReceiptCorrection) -> None: ...

    def corrections_for(self, receipt_ids: Sequence[str]) -> CorrectionList: ...

    def pending_corrections(self) -> CorrectionList: ...

    def set_correction_status(self, correction_id: str, status: str) -> None: ...


class EntryCodeRepository(Protocol):
    def issued(self, reference: str) -> EntryCode | None:
        """What an issued entry code stands for (None: this store never issued it)."""

    def use(self, nonce: str, account_token: str, session_id: str, used_at: float) -> str:
        """Record the first use of an entry code; return the session that used it first."""


class UnitOfWork(Protocol):
    inbox: InboxRepository
    sessions: SessionRepository
    receipts: ReceiptRepository
    outbox: OutboxRepository
    dead_letters: DeadLetterRepository
    # Issue 6: review items and entry codes are decided in the same transaction as the carts.
    reviews: ReviewRepository
    entry_codes: EntryCodeRepository

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, *exc: object) -> None:
        """Roll back whatever was not committed."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class PaymentGateway(Protocol):
    def charge(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        """Charge once per idempotency key: a repeated call returns the first call's result."""


@dataclass(frozen=True)
class TopUpStarted:
    """A top-up under way: ``credited`` (the money is in the wallet) or ``redirect`` (the shopper pays
    on the provider's page at ``redirect_url``; the wallet is credited when the provider confirms)."""

    status: Literal["credited", "redirect"]
    reference: str
    redirect_url: str | None = None


class TopUpPort(Protocol):
    def start_top_up(
        self, account_token: str, amount_cents: int, currency: str, idempotency_key: str, return_url: str
    ) -> TopUpStarted:
        """Begin a shopper's top-up; a repeated key returns the first start. Raises
        :class:`~store_server.domain.accounts.TopUpRefused` when this store cannot take it."""


class Mailer(Protocol):
    def send_receipt(self, receipt: Receipt, text: str) -> str:
        """Deliver a rendered receipt; return where it went (an address or a file path)."""


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds; used for metrics (latency, received_at), never for decisions."""
