"""The access log becomes a hash chain (issue 32, #5).

* ``access_log.chain``, ``n``, ``prev``, ``digest``: each row names the chain
  of the process that wrote it, its place in it, the digest of the row
  before and its own (sshtrail/accesschain.py); the heads of the chains are
  published, signed, on a Kafka topic, where a database writer cannot
  rewrite them, and ``sshtrail access-log --verify`` holds the rows to them.
  Rows written before stay as they are, outside any chain (NULL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_log") as table:
        table.add_column(sa.Column("chain", sa.String(length=32), nullable=True))
        table.add_column(sa.Column("n", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("prev", sa.LargeBinary(length=32), nullable=True))
        table.add_column(sa.Column("digest", sa.LargeBinary(length=32), nullable=True))
    op.create_index(op.f("ix_access_log_chain_n"), "access_log", ["chain", "n"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_log_chain_n"), table_name="access_log")
    with op.batch_alter_table("access_log") as table:
        for column in ("digest", "prev", "n", "chain"):
            table.drop_column(column)
