"""Initial schema: inbox, dead letters, sessions and carts, receipts, outbox, ledger, embedded backend.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("balance_cents", sa.BigInteger(), nullable=False),
        sa.Column("credit_limit_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_accounts")),
    )
    op.create_table(
        "charge_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_attempts")),
    )
    op.create_index("ix_charge_attempts_key", "charge_attempts", ["idempotency_key"], unique=False)
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=255), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_table(
        "inbox_messages",
        sa.Column("msg_id", sa.String(length=128), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("due", sa.Double(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("processed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_inbox_messages")),
    )
    op.create_index("ix_inbox_messages_kind_ts", "inbox_messages", ["kind", "ts"], unique=False)
    op.create_index("ix_inbox_messages_node_ts", "inbox_messages", ["node_id", "ts"], unique=False)
    op.create_index(
        "ix_inbox_messages_pending", "inbox_messages", ["processed", "due", "ts", "msg_id"], unique=False
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("sent_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("kind", "key", name="uq_outbox_kind_key"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"], unique=False)
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("track_id", sa.String(length=128), nullable=True),
        sa.Column("entered_at", sa.Double(), nullable=False),
        sa.Column("exited_at", sa.Double(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_entered_at", "sessions", ["entered_at"], unique=False)
    op.create_index("ix_sessions_state_entered", "sessions", ["state", "entered_at"], unique=False)
    op.create_table(
        "cart_changes",
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_cart_changes_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "position", name=op.f("pk_cart_changes")),
        sa.UniqueConstraint("session_id", "event_id", name="uq_cart_changes_session_event"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_token"], ["accounts.token"], name=op.f("fk_ledger_entries_account_token_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_entries_idempotency_key")),
    )
    op.create_index("ix_ledger_entries_account", "ledger_entries", ["account_token", "id"], unique=False)
    op.create_table(
        "receipts",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("exited_at", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_by_class", sa.JSON(), nullable=False),
        sa.Column("payment_status", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=128), nullable=True),
        sa.Column("decline_reason", sa.Text(), nullable=True),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_receipts_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("session_id", name=op.f("uq_receipts_session_id")),
    )
    op.create_index("ix_receipts_exited_at", "receipts", ["exited_at"], unique=False)
    op.create_table(
        "receipt_lines",
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_class", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"],
            ["receipts.id"],
            name=op.f("fk_receipt_lines_receipt_id_receipts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("receipt_id", "position", name=op.f("pk_receipt_lines")),
    )
    op.create_table(
        "backend_orders",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("payment_status", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=128), nullable=True),
        sa.Column("placed_at", sa.Double(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_backend_orders")),
    )
    op.create_index(
        "ix_backend_orders_store_placed", "backend_orders", ["store_id", "placed_at"], unique=False
    )
    op.create_table(
        "backend_stock",
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "sku", name=op.f("pk_backend_stock")),
    )
    op.create_table(
        "backend_order_lines",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_class", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["backend_orders.order_id"],
            name=op.f("fk_backend_order_lines_order_id_backend_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "position", name=op.f("pk_backend_order_lines")),
    )


def downgrade() -> None:
    op.drop_table("backend_order_lines")
    op.drop_table("backend_stock")
    op.drop_index("ix_backend_orders_store_placed", table_name="backend_orders")
    op.drop_table("backend_orders")
    op.drop_table("receipt_lines")
    op.drop_index("ix_receipts_exited_at", table_name="receipts")
    op.drop_table("receipts")
    op.drop_index("ix_ledger_entries_account", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("cart_changes")
    op.drop_index("ix_sessions_state_entered", table_name="sessions")
    op.drop_index("ix_sessions_entered_at", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_inbox_messages_pending", table_name="inbox_messages")
    op.drop_index("ix_inbox_messages_node_ts", table_name="inbox_messages")
    op.drop_index("ix_inbox_messages_kind_ts", table_name="inbox_messages")
    op.drop_table("inbox_messages")
    op.drop_table("dead_letters")
    op.drop_index("ix_charge_attempts_key", table_name="charge_attempts")
    op.drop_table("charge_attempts")
    op.drop_table("accounts")
