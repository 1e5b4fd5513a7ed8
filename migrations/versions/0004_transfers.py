"""File transfers read from SFTP and SCP sessions.

* ``transfers``: one row per file operation of a session (upload, download,
  rename, remove, mkdir, setstat ...), with the path, the server's answer,
  and for files that moved whole their size and SHA-256;
* ``sessions.transfers`` (NULL, ``pending``, ``done``, ``failed``) and
  ``sessions.transfers_error``: whether the store group has read a session's
  transfers yet. Sessions stored before this revision that look like SFTP or
  SCP are marked ``pending``, so the store group reads them too.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("transfers", sa.String(length=16), nullable=True))
        table.add_column(sa.Column("transfers_error", sa.Text(), nullable=True))
    op.create_table(
        "transfers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("t", sa.BigInteger(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("status", sa.String(length=512), nullable=False),
        sa.Column("path2", sa.String(length=4096), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("ranges", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_transfers_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    op.create_index(
        op.f("ix_transfers_session_id_idx"), "transfers", ["session_id", "idx"], unique=True
    )
    op.create_index(op.f("ix_transfers_path"), "transfers", ["path"])
    op.create_index(op.f("ix_transfers_op"), "transfers", ["op"])
    op.execute(
        "UPDATE sessions SET transfers = 'pending' WHERE end_reason IS NOT NULL AND ("
        "(request = 'subsystem' AND command = 'sftp') OR "
        "(request = 'exec' AND (command LIKE 'scp %' OR command LIKE '%/scp %')))"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_transfers_op"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_path"), table_name="transfers")
    op.drop_index(op.f("ix_transfers_session_id_idx"), table_name="transfers")
    op.drop_table("transfers")
    # Not a batch (a copy of the table) on SQLite: the triggers of 0003 name
    # ``sessions`` and would break in the copy; SQLite drops columns itself (3.35+).
    for column in ("transfers_error", "transfers"):
        op.drop_column("sessions", column)
