"""Session flags (issue 41): ``sessions.flags``, why a session deserves an auditor's eye
(sorted, comma-separated names), and ``sessions.flag_state``, what the store group's
detectors follow between batches (consumer/sessionflags.py). Rows of sessions stored
before have no flags: only what the store reads from now on is flagged.

Columns added in place (``ALTER TABLE ... ADD COLUMN``) on both engines, as 0010 does.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("flags", sa.String(length=128), nullable=True))
    op.add_column("sessions", sa.Column("flag_state", sa.String(length=512), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35: no copy of the table
        op.execute("ALTER TABLE sessions DROP COLUMN flag_state")
        op.execute("ALTER TABLE sessions DROP COLUMN flags")
        return
    op.drop_column("sessions", "flag_state")
    op.drop_column("sessions", "flags")
