"""The web console's access log: who looked at what.

* ``access_log``: one row per login, failed login, logout, sessions list,
  session view, replay, search (with its text), export and admin page view
  of the web console (``sshtrail access-log`` prints it). Not tied to
  ``sessions`` by a foreign key: the record of who looked at a session
  outlives the session's rows;
* ``sessions`` indexes on (operator, started_at), (target, started_at) and
  (status, started_at) instead of the three columns alone: a filtered list,
  newest first, reads its page off the index instead of sorting every match.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("auditor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.String(length=2048), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    op.create_index(op.f("ix_access_log_at"), "access_log", ["at"])
    op.create_index(op.f("ix_access_log_auditor_at"), "access_log", ["auditor", "at"])
    op.create_index(op.f("ix_access_log_session_id"), "access_log", ["session_id"])
    for column in _FILTERED:
        op.drop_index(op.f(f"ix_sessions_{column}"), table_name="sessions")
        op.create_index(
            op.f(f"ix_sessions_{column}_started_at"), "sessions", [column, "started_at"]
        )


#: The sessions columns lists are filtered by, newest first.
_FILTERED = ("operator", "target", "status")


def downgrade() -> None:
    for column in _FILTERED:
        op.drop_index(op.f(f"ix_sessions_{column}_started_at"), table_name="sessions")
        op.create_index(op.f(f"ix_sessions_{column}"), "sessions", [column])
    op.drop_index(op.f("ix_access_log_session_id"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_auditor_at"), table_name="access_log")
    op.drop_index(op.f("ix_access_log_at"), table_name="access_log")
    op.drop_table("access_log")
