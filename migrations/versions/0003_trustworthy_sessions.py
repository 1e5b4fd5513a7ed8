"""Sessions that cannot stall the store, and verification that cannot go stale.

* ``exit_status`` widened to 64 bits: an SSH exit status is an unsigned
  32-bit number, beyond a signed ``INTEGER`` from 2**31;
* statuses ``refused`` (a login or channel the gateway refused) and
  ``quarantined`` (chunks the database refused, in the dead-letter topic),
  with ``quarantine_reason``;
* the masked-input columns (``masked_bytes``, ``masked_lines``,
  ``masked_run``, ``masked_input``, ``input_line``);
* triggers that set ``sessions.verified`` to NULL whenever a stored chunk is
  changed or deleted, so no reader trusts a verdict the bytes no longer back.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "status IN ('active', 'closed', 'incomplete')"
_NEW_STATUSES = "status IN ('active', 'closed', 'incomplete', 'refused', 'quarantined')"

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER chunks_changed AFTER UPDATE ON chunks BEGIN "
    "UPDATE sessions SET verified = NULL WHERE id IN (old.session_id, new.session_id); END",
    "CREATE TRIGGER chunks_deleted AFTER DELETE ON chunks BEGIN "
    "UPDATE sessions SET verified = NULL WHERE id = old.session_id; END",
)
_POSTGRES_TRIGGERS = (
    # Not for the cascade of a deleted session (trigger depth 2): that row is going.
    """CREATE FUNCTION sshtrail_chunk_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
        UPDATE sessions SET verified = NULL WHERE id = OLD.session_id;
        IF TG_OP = 'UPDATE' AND NEW.session_id <> OLD.session_id THEN
            UPDATE sessions SET verified = NULL WHERE id = NEW.session_id;
        END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER chunks_changed AFTER UPDATE OR DELETE ON chunks "
    "FOR EACH ROW EXECUTE FUNCTION sshtrail_chunk_changed()",
)


def upgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.alter_column("exit_status", type_=sa.BigInteger(), existing_nullable=True)
        table.drop_constraint(op.f("ck_sessions_status_known"), type_="check")
        table.create_check_constraint("status_known", _NEW_STATUSES)
        table.add_column(sa.Column("quarantine_reason", sa.Text(), nullable=True))
        for name in ("masked_bytes", "masked_lines", "masked_run"):
            table.add_column(sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))
        table.add_column(sa.Column("masked_input", sa.String(length=16), nullable=True))
        table.add_column(sa.Column("input_line", sa.String(length=256), nullable=True))
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _SQLITE_TRIGGERS if sqlite else _POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS chunks_changed")
        op.execute("DROP TRIGGER IF EXISTS chunks_deleted")
    else:
        op.execute("DROP TRIGGER IF EXISTS chunks_changed ON chunks")
        op.execute("DROP FUNCTION IF EXISTS sshtrail_chunk_changed()")
    # Rows of the new statuses cannot stay under the old constraint.
    op.execute("UPDATE sessions SET status = 'closed' WHERE status IN ('refused', 'quarantined')")
    with op.batch_alter_table("sessions") as table:
        for name in ("input_line", "masked_input", "masked_run", "masked_lines", "masked_bytes"):
            table.drop_column(name)
        table.drop_column("quarantine_reason")
        table.drop_constraint(op.f("ck_sessions_status_known"), type_="check")
        table.create_check_constraint("status_known", _OLD_STATUSES)
        table.alter_column("exit_status", type_=sa.Integer(), existing_nullable=True)
