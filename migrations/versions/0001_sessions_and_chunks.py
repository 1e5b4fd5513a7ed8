"""Sessions and their chunks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sa.String(length=255)
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("operator", _TEXT, nullable=True),
        sa.Column("client", _TEXT, nullable=True),
        sa.Column("target", _TEXT, nullable=True),
        sa.Column("target_host", _TEXT, nullable=True),
        sa.Column("target_port", sa.Integer(), nullable=True),
        sa.Column("target_user", _TEXT, nullable=True),
        sa.Column("gateway", _TEXT, nullable=True),
        sa.Column("term", _TEXT, nullable=True),
        sa.Column("started_at", _UTC, nullable=True),
        sa.Column("ended_at", _UTC, nullable=True),
        sa.Column("last_chunk_at", _UTC, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("exit_signal", sa.String(length=64), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("gaps", sa.JSON(), nullable=False),
        sa.Column("final_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=True),
        sa.Column("signing_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'closed', 'incomplete')",
            name=op.f("ck_sessions_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    for column in ("operator", "target", "started_at", "status"):
        op.create_index(op.f(f"ix_sessions_{column}"), "sessions", [column])

    op.create_table(
        "chunks",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("t_first", sa.BigInteger(), nullable=False),
        sa.Column("t_last", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_chunks_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "seq", name=op.f("pk_chunks")),
    )


def downgrade() -> None:
    op.drop_table("chunks")
    for column in ("status", "started_at", "target", "operator"):
        op.drop_index(op.f(f"ix_sessions_{column}"), table_name="sessions")
    op.drop_table("sessions")
