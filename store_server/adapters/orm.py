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
    Index("ix_sessions_account_entered", "account_token", "entered_at"),  # a shopper's visits
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
    # What decided the product: weight, planogram or vision ("" for staff corrections and older rows).
    Column("evidence", String(16), nullable=False, server_default=""),
    # One event changes one line per product, and the same weight event can never change the same cart
    # twice, even if two workers race (the second insert of its first line fails).
    UniqueConstraint("session_id", "event_id", "sku", name="uq_cart_changes_session_event_sku"),
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
    Index("ix_receipts_account_exited", "account_token", "exited_at"),  # a shopper's receipts
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

# -- people, access and the review queue (migration 0003) ------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # stored lower-case
    Column("name", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # shopper | staff | admin
    Column("password_hash", Text, nullable=False),  # argon2id, never the password
    Column("account_token", String(128), nullable=True, unique=True),  # a shopper's ledger account
    Column("created_at", Double, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # sha256 of the random token in the cookie: a leaked table does not let anyone in.
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Index("ix_web_sessions_user", "user_id"),
)

entry_code_uses = Table(
    "entry_code_uses",
    metadata,
    Column("nonce", String(64), primary_key=True),  # single use: a second gate pass hits this key
    Column("account_token", String(128), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("used_at", Double, nullable=False),  # event time of the gate pass
)

review_items = Table(
    "review_items",
    metadata,
    Column("id", String(200), primary_key=True),  # deterministic from the evidence: rv-<kind>-<event>
    Column("kind", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Double, nullable=False),  # event time
    Column("event_id", String(160), nullable=False),
    Column("session_id", String(128), nullable=True),
    Column("summary", Text, nullable=False),
    Column("evidence", JSON, nullable=False),
    Column("applied", JSON, nullable=True),  # {session_id, sku, quantity} the decision put in a cart
    Column("resolution", JSON, nullable=False),
    Column("resolved_by", String(320), nullable=True),
    Column("resolved_at", Double, nullable=True),  # wall clock, audit only
    Index("ix_review_items_status_created", "status", "created_at"),
    Index("ix_review_items_session", "session_id"),
)

receipt_corrections = Table(
    "receipt_corrections",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("receipt_id", String(128), ForeignKey("receipts.id"), nullable=False),
    Column("review_id", String(200), nullable=False),
    Column("lines", JSON, nullable=False),  # [{sku, name, quantity, amount_cents}], signed
    Column("total_before_cents", BigInteger, nullable=False),
    Column("total_after_cents", BigInteger, nullable=False),
    Column("refund_cents", BigInteger, nullable=False),  # > 0 refunded, < 0 charged on top
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),  # pending | refunded | charged | declined | none
    Column("note", Text, nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Index("ix_receipt_corrections_receipt", "receipt_id"),
    Index("ix_receipt_corrections_status", "status"),
    Index("ix_receipt_corrections_review", "review_id"),
)

# -- entry codes by reference, card top-ups (migration 0005) ---------------------------------------

entry_codes = Table(
    "entry_codes",
    metadata,
    # The random reference a code carries instead of the account token; the gate looks it up here.
    Column("reference", String(32), primary_key=True),
    Column("account_token", String(128), nullable=False),
    Column("group_size", Integer, nullable=False),  # the only source of a group's size at the gate
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),  # compared with the gate pass's event time
    Index("ix_entry_codes_expires", "expires_at"),
)

top_up_checkouts = Table(
    "top_up_checkouts",
    metadata,
    Column("id", String(128), primary_key=True),  # the provider's checkout session id
    Column("idempotency_key", String(255), nullable=False, unique=True),  # a double-submitted form
    Column("account_token", String(128), ForeignKey("accounts.token"), nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("url", Text, nullable=False),  # the provider's hosted page
    Column("status", String(16), nullable=False),  # pending | paid
    Column("payment_id", String(128), nullable=True),  # the provider's payment, the credit's key
    Column("created_at", Double, nullable=False),
    Column("paid_at", Double, nullable=True),
    Index("ix_top_up_checkouts_account", "account_token", "created_at"),
)
