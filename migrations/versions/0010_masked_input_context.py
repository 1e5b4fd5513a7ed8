"""What the masked-input mark follows beyond counts (issue 41): ``sessions.full_screen``,
whether a full-screen program owns the terminal (its keys are not blind input), and
``sessions.masked_reads``, the variables a ``read`` filled with blind input (handed to
``eval`` later, they make the session suspicious). Both are the store group's state
between batches (sshtrail/maskedinput.py); rows of sessions ended before stay as they
were marked.

Columns added in place (``ALTER TABLE ... ADD COLUMN``) on both engines: on SQLite,
copying ``sessions`` as Alembic's batch mode does would drop the old table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("full_screen", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("sessions", sa.Column("masked_reads", sa.String(length=256), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite 3.35: no copy of the table
        op.execute("ALTER TABLE sessions DROP COLUMN masked_reads")
        op.execute("ALTER TABLE sessions DROP COLUMN full_screen")
        return
    op.drop_column("sessions", "masked_reads")
    op.drop_column("sessions", "full_screen")
