"""Cart changes record what decided them (weight, planogram or vision), and one weight event may change
several lines of a cart (two products taken at once): unique per (session, event, product).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cart_changes") as batch:
        batch.add_column(sa.Column("evidence", sa.String(length=16), server_default="", nullable=False))
        batch.drop_constraint("uq_cart_changes_session_event", type_="unique")
        batch.create_unique_constraint("uq_cart_changes_session_event_sku", ["session_id", "event_id", "sku"])


def downgrade() -> None:
    # Only possible while no event changed two lines of one cart (the old key allowed one).
    with op.batch_alter_table("cart_changes") as batch:
        batch.drop_constraint("uq_cart_changes_session_event_sku", type_="unique")
        batch.create_unique_constraint("uq_cart_changes_session_event", ["session_id", "event_id"])
        batch.drop_column("evidence")
