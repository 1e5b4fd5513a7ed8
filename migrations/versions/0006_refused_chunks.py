"""Chunks refused on arrival, kept as evidence.

* ``refused_chunks``: one row per chunk of the sessions topic that no trusted
  gateway signed (a forgery, or an unsigned chunk of wire format 1 to 3 while
  ``consumer.accept_unsigned_chunks`` is off), keyed by the partition and
  offset it came from, with its session id and seq as it states them, why it
  was refused, its bytes and when it was published. Not tied to ``sessions``
  by a foreign key: a forged chunk of a session that does not exist is kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10
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
    op.create_table(
        "refused_chunks",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=256), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partition", "offset", name=op.f("pk_refused_chunks")),
    )
    op.create_index(
        op.f("ix_refused_chunks_session_id_seq"), "refused_chunks", ["session_id", "seq"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_refused_chunks_session_id_seq"), table_name="refused_chunks")
    op.drop_table("refused_chunks")
