"""People and access (users, web sessions, used entry codes), the review queue, receipt corrections
and backend order adjustments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("account_token", name=op.f("uq_users_account_token")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_user", "web_sessions", ["user_id"], unique=False)
    op.create_table(
        "entry_code_uses",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_entry_code_uses")),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("event_id", sa.String(length=160), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("applied", sa.JSON(), nullable=True),
        sa.Column("resolution", sa.JSON(), nullable=False),
        sa.Column("resolved_by", sa.String(length=320), nullable=True),
        sa.Column("resolved_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
    )
    op.create_index("ix_review_items_status_created", "review_items", ["status", "created_at"], unique=False)
    op.create_index("ix_review_items_session", "review_items", ["session_id"], unique=False)
    op.create_table(
        "receipt_corrections",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("review_id", sa.String(length=200), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total_before_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_after_cents", sa.BigInteger(), nullable=False),
        sa.Column("refund_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["receipt_id"], ["receipts.id"], name=op.f("fk_receipt_corrections_receipt_id_receipts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipt_corrections")),
    )
    op.create_index("ix_receipt_corrections_receipt", "receipt_corrections", ["receipt_id"], unique=False)
    op.create_index("ix_receipt_corrections_status", "receipt_corrections", ["status"], unique=False)
    op.create_index("ix_receipt_corrections_review", "receipt_corrections", ["review_id"], unique=False)
    op.create_table(
        "backend_order_adjustments",
        sa.Column("adjustment_id", sa.String(length=200), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total_delta_cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["backend_orders.order_id"],
            name=op.f("fk_backend_order_adjustments_order_id_backend_orders"),
        ),
        sa.PrimaryKeyConstraint("adjustment_id", name=op.f("pk_backend_order_adjustments")),
    )
    op.create_index(
        "ix_backend_order_adjustments_order", "backend_order_adjustments", ["order_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_backend_order_adjustments_order", table_name="backend_order_adjustments")
    op.drop_table("backend_order_adjustments")
    op.drop_index("ix_receipt_corrections_review", table_name="receipt_corrections")
    op.drop_index("ix_receipt_corrections_status", table_name="receipt_corrections")
    op.drop_index("ix_receipt_corrections_receipt", table_name="receipt_corrections")
    op.drop_table("receipt_corrections")
    op.drop_index("ix_review_items_session", table_name="review_items")
    op.drop_index("ix_review_items_status_created", table_name="review_items")
    op.drop_table("review_items")
    op.drop_table("entry_code_uses")
    op.drop_index("ix_web_sessions_user", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_table("users")
