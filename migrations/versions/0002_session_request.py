"""What each session asked for: shell, exec, subsystem or a forwarded connection.

Adds ``sessions.request`` and ``sessions.command`` and fills them for the
sessions already stored, from the ``exec`` event in their first chunks (the
gateway flushes the request with the start, so it is in chunk 0 or 1).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.frozen.wire_v2 import request_of

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 500  # sessions per round: far below either engine's parameter limit


def upgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.add_column(sa.Column("request", sa.String(length=16), nullable=True))
        table.add_column(sa.Column("command", sa.String(length=255), nullable=True))
    _backfill(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("sessions") as table:
        table.drop_column("command")
        table.drop_column("request")


def _backfill(conn: sa.Connection) -> None:
    """Fill the new columns from stored chunks, a page of sessions at a time."""
    chunks = sa.table(
        "chunks",
        sa.column("session_id", sa.Uuid()),
        sa.column("seq"),
        sa.column("data", sa.LargeBinary()),
    )
    sessions = sa.table(
        "sessions", sa.column("id", sa.Uuid()), sa.column("request"), sa.column("command")
    )
    update = (
        sa.update(sessions)
        .where(sessions.c.id == sa.bindparam("sid"))
        .values(request=sa.bindparam("mode"), command=sa.bindparam("cmd"))
    )
    last: uuid.UUID | None = None
    while True:
        page = sa.select(sessions.c.id).order_by(sessions.c.id).limit(_PAGE)
        ids = list(
            conn.execute(page if last is None else page.where(sessions.c.id > last)).scalars()
        )
        if not ids:
            return
        last = ids[-1]
        first_chunks = (
            sa.select(chunks.c.session_id, chunks.c.data)
            .where(chunks.c.session_id.in_(ids), chunks.c.seq <= 1)
            .order_by(chunks.c.session_id, chunks.c.seq)
        )
        found: dict[uuid.UUID, tuple[str, str]] = {}
        for session_id, data in conn.execute(first_chunks):
            request = None if session_id in found else request_of(data)
            if request is not None:
                mode, command = request
                found[session_id] = (mode, _text(command.decode("utf-8", "replace"))[:255])
        if found:
            conn.execute(
                update,
                [{"sid": sid, "mode": mode, "cmd": cmd} for sid, (mode, cmd) in found.items()],
            )


def _text(value: str) -> str:
    """NUL as the store keeps it (PostgreSQL text cannot hold it): "\u2400" escapes."""
    return value.replace("\u2400", "\u2400\u2400").replace("\x00", "\u24000")
