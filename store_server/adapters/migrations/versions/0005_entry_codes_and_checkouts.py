"""Entry codes by opaque reference (the code no longer carries the account token) and card top-up
checkouts (the wallet is credited only by the provider's verified webhook).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "entry_codes",
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("group_size", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("reference", name=op.f("pk_entry_codes")),
    )
    op.create_index("ix_entry_codes_expires", "entry_codes", ["expires_at"], unique=False)
    op.create_table(
        "top_up_checkouts",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("account_token", sa.String(length=128), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("payment_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("paid_at", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_token"], ["accounts.token"], name=op.f("fk_top_up_checkouts_account_token_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_top_up_checkouts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_top_up_checkouts_idempotency_key")),
    )
    op.create_index(
        "ix_top_up_checkouts_account", "top_up_checkouts", ["account_token", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_top_up_checkouts_account", table_name="top_up_checkouts")
    op.drop_table("top_up_checkouts")
    op.drop_index("ix_entry_codes_expires", table_name="entry_codes")
    op.drop_table("entry_codes")
