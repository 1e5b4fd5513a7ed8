"""Sessions marked by the command policy (issue 29): ``sessions.policy``, the strongest
decision the gateway's command policy made in the session (``warned``, ``rejected``),
read by the store group from the session's ``policy`` notices and its end.

A column added in place (``ALTER TABLE ... ADD COLUMN``) on both engines: on SQLite,
copying ``sessions`` as Alembic's batch mode does would drop the old table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("policy", sa.String(length=16), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE sessions DROP COLUMN policy")  # SQLite 3.35: no copy
        return
    op.drop_column("sessions", "policy")
