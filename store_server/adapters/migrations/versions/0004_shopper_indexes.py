"""Indexes for the shopper app: a shopper's receipts and visits are looked up by account.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_receipts_account_exited", "receipts", ["account_token", "exited_at"], unique=False)
    op.create_index("ix_sessions_account_entered", "sessions", ["account_token", "entered_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sessions_account_entered", table_name="sessions")
    op.drop_index("ix_receipts_account_exited", table_name="receipts")
