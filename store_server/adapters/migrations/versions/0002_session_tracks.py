"""Groups and track continuations: several camera tracks per session, and the expected group size.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("group_size", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "session_tracks",
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("track_id", sa.String(length=128), nullable=False),
        sa.Column("bound_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("end_reason", sa.String(length=16), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_tracks_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "track_id", name=op.f("pk_session_tracks")),
    )
    op.create_index("ix_session_tracks_track", "session_tracks", ["track_id"], unique=False)
    # Every existing session had exactly its one track.
    op.execute(
        "INSERT INTO session_tracks (session_id, track_id, bound_at, ended_at, end_reason) "
        "SELECT id, track_id, entered_at, exited_at, CASE WHEN exited_at IS NULL THEN '' ELSE 'exit' END "
        "FROM sessions WHERE track_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_session_tracks_track", table_name="session_tracks")
    op.drop_table("session_tracks")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("group_size")
