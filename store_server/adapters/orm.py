"""The store server's tables (SQLAlchemy Core). The domain classes stay free of SQLAlchemy:
repositories translate rows to domain objects and back.

Money is integer cents (BigInteger), times are float epoch seconds (double precision).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Stable constraint names so migrations can refer to them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("msg_id", String(128), primary_key=True),  # node_id:seq, the at-least-once dedup key
    Column("node_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("ts", Double, nullable=False),
    Column("due", Double, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", Double, nullable=False),
    Column("processed", Boolean, nullable=False, default=False),
    # due(): WHERE NOT processed AND due <= wm ORDER BY due, ts, msg_id
    Index("ix_inbox_messages_pending", "processed", "due", "ts", "msg_id"),
    Index("ix_inbox_messages_kind_ts", "kind", "ts"),
    # node_watermarks(): max(ts) per node is an index-only scan
    Index("ix_inbox_messages_node_ts", "node_id", "ts"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(255), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # raw bytes: a bad payload may not even be UTF-8
    Column("reason", Text, nullable=False),
    Column("field", String(255), nullable=False, default=""),
    Column("received_at", Double, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("store_id", String(64), nullable=False),
    Column("account_token", String(128), nullable=False),
    Column("track_id", String(128), nullable=True),
    Column("entered_at", Double, nullable=False),
    Column("exited_at", Double, nullable=True),
    Column("state", String(16), nullable=False),
    Column("group_size", Integer, nullable=False, server_default="1"),
    Index("ix_sessions_state_entered", "state", "entered_at"),
    Index("ix_sessions_entered_at", "entered_at"),
)

session_tracks = Table(
    "session_tracks",
    metadata,
    Column("session_id", String(128), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("track_id", String(128), primary_key=True),
    Column("bound_at", Double, nullable=False),
    Column("ended_at", Double, nullable=True),
    Column("end_reason", String(16), nullable=False, server_default=""),
    Index("ix_session_tracks_track", "track_id"),
)

cart_changes = Table(
    "cart_changes",
    metadata,
    Column("session_id", String(128), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),  # order of application; the cart is a fold over it
    Column("event_id", String(128), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("at", Double, nullable=False),
    Column("confidence", Double, nullable=False),
    Column("note", Text, nullable=False, default=""),
    # The same weight event can never change the same cart twice, even if two workers race.
    UniqueConstraint("session_id", "event_id", name="uq_cart_changes_session_event"),
)

receipts = Table(
    "receipts",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("session_id", String(128), ForeignKey("sessions.id"), nullable=False, unique=True),
    Column("store_id", String(64), nullable=False),
    Column("account_token", String(128), nullable=False),
    Column("exited_at", Double, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal_cents", BigInteger, nullable=False),
    Column("tax_cents", BigInteger, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("tax_by_class", JSON, nullable=False),  # [[tax_class, cents], ...] in class order
    Column("payment_status", String(16), nullable=False),
    Column("charge_id", String(128), nullable=True),
    Column("decline_reason", Text, nullable=True),
    Column("issued_at", Double, nullable=False),  # wall clock: metrics and audit only
    Index("ix_receipts_exited_at", "exited_at"),
)

receipt_lines = Table(
    "receipt_lines",
    metadata,
    Column("receipt_id", String(128), ForeignKey("receipts.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("tax_class", String(64), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(128), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("sent_at", Double, nullable=True),
    UniqueConstraint("kind", "key", name="uq_outbox_kind_key"),
    Index("ix_outbox_pending", "sent_at", "id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("token", String(128), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("email", String(320), nullable=True),
    Column("balance_cents", BigInteger, nullable=False, default=0),
    Column("credit_limit_cents", BigInteger, nullable=False, default=0),
    Column("created_at", Double, nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_token", String(128), ForeignKey("accounts.token"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),  # negative = charge, positive = top-up/refund
    Column("kind", String(16), nullable=False),  # charge | topup | refund
    # The exactly-once guarantee for money: a second writer with the same key hits this constraint.
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("created_at", Double, nullable=False),
    Index("ix_ledger_entries_account", "account_token", "id"),
)

charge_attempts = Table(
    "charge_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("account_token", String(128), nullable=False),  # no FK: unknown accounts are recorded too
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # approved | declined
    Column("reason", Text, nullable=True),
    Column("created_at", Double, nullable=False),
    Index("ix_charge_attempts_key", "idempotency_key"),
)
