"""Indexes for a year of data (issue 31): ``transfers --path`` and the expired-offset
accounting without a full scan.

* PostgreSQL: ``pg_trgm`` GIN indexes on ``transfers.path`` and ``path2``. A shell
  pattern becomes a LIKE (sshtrail/transferqueries.py); the btree on ``path`` serves
  no LIKE under the database's ``C.UTF-8`` collation, a trigram index serves a prefix
  and a substring alike. SQLite has no index that serves a substring: none is made
  there (the models say so with ``postgresql_only``). The search index made the
  extension already where it shares the store's database; ``IF NOT EXISTS`` either way.
* Both: ``chunks (partition, offset)``, which stored chunks came from a span of a Kafka
  partition (consumer/expired.py). ``chunks`` is partitioned by month on PostgreSQL
  (0016): the index made on the parent is made on every partition, and on the months
  made later.

Each ``CREATE INDEX`` holds off writes to its table while it builds (not
``CONCURRENTLY``: a partitioned parent refuses it, and a migration is one transaction);
docs/performance.md has the build times measured.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (name, column, rows left out): ``path2`` is NULL but for renames and links, and
#: PostgreSQL costs a GIN index of NULLs by its size, as if each page were searched.
_TRIGRAM = (
    ("ix_transfers_path_trgm", "path", None),
    ("ix_transfers_path2_trgm", "path2", "path2 IS NOT NULL"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column, where in _TRIGRAM:
            op.create_index(
                name,
                "transfers",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
                postgresql_where=sa.text(where) if where else None,
            )
    op.create_index(op.f("ix_chunks_partition_offset"), "chunks", ["partition", "offset"])


def downgrade() -> None:
    op.drop_index(op.f("ix_chunks_partition_offset"), table_name="chunks")
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _ in _TRIGRAM:
            op.drop_index(name, table_name="transfers")
