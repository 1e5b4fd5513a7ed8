"""Sessions whose gateway stopped without ending them (issue 32, finding 9).

* status ``interrupted``: a restarted gateway ended the session with a signed
  end saying it stopped unexpectedly, or the store group gave up on a session
  whose gateway stayed silent (sshtrail/interrupted.py);
* ``sessions.interrupted_at``: when the store group marked it so.

Sessions an earlier store marked ``incomplete`` for a silence keep that status
(the store did not record when it marked them); a chunk that arrives for one
sets its status from the data again, as before.

On SQLite the status constraint is widened in place, as SQLite's manual says
for a CHECK constraint that only accepts more (``PRAGMA writable_schema``,
"Making other kinds of table schema changes"): copying ``sessions`` to a new
table, as Alembic's batch mode does, drops the old one, and with foreign keys
on that deletes every chunk and transfer of every session by cascade.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "status IN ('active', 'closed', 'incomplete', 'refused', 'quarantined')"
_NEW_STATUSES = (
    "status IN ('active', 'closed', 'incomplete', 'refused', 'quarantined', 'interrupted')"
)


def upgrade() -> None:
    if _sqlite():
        _sqlite_check(_OLD_STATUSES, _NEW_STATUSES)
        op.execute("ALTER TABLE sessions ADD COLUMN interrupted_at DATETIME")
        return
    op.drop_constraint(op.f("ck_sessions_status_known"), "sessions", type_="check")
    op.create_check_constraint("status_known", "sessions", _NEW_STATUSES)
    op.add_column("sessions", sa.Column("interrupted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    # The older schema has one status for a session without a proper end: incomplete.
    op.execute("UPDATE sessions SET status = 'incomplete' WHERE status = 'interrupted'")
    if _sqlite():
        op.execute("ALTER TABLE sessions DROP COLUMN interrupted_at")
        _sqlite_check(_NEW_STATUSES, _OLD_STATUSES)
        return
    op.drop_column("sessions", "interrupted_at")
    op.drop_constraint(op.f("ck_sessions_status_known"), "sessions", type_="check")
    op.create_check_constraint("status_known", "sessions", _OLD_STATUSES)


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _sqlite_check(old: str, new: str) -> None:
    """Replace the status constraint's text in the schema SQLite keeps of ``sessions``."""
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sessions'"
    ).scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"the sessions table's status constraint is not {old!r}")
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'sessions'",
            (sql.replace(old, new),),
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problem = bind.exec_driver_sql("PRAGMA integrity_check").scalar_one()
    if problem != "ok":
        raise RuntimeError(f"SQLite's integrity check after the change: {problem}")
