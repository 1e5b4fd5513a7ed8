"""File transfers read back from stored SFTP and SCP sessions, into ``transfers``.

The gateway records an SFTP or SCP session as it records any other: bytes
in, bytes out. Understanding them is the store group's work, after the
session has ended and every chunk of it is stored (the row's ``transfers``
column says ``pending``; every ``exec`` and ``subsystem`` session waits so,
whatever it ran): :func:`read_transfers` tells the protocol from the
session's first bytes or its words (sshtrail/transferprotocol.py), replays
the stored chunks, in order and one at a time, through the protocol's
parser and writes each operation as a ``transfers`` row, in batches; a protocol
its bytes speak that its request did not name flags the session
``transfer-unrequested`` (consumer/sessionflags.py). A
session that is no transfer goes back to NULL. Bytes that look like a
protocol but cannot be read, and a stream the parser cannot follow, mark
the session ``failed`` with the reason; the operations read up to there
stay. Nothing here can stop the group: a session is read once, whatever it
holds.
"""

from __future__ import annotations

import logging
import uuid
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from consumer.sessionflags import transfer_unrequested
from sshtrail.errors import DatabaseError, WireError
from sshtrail.fileops import FileOperation, TransferParseError
from sshtrail.filetransfers import parser_for, recognise, replay
from sshtrail.models import SessionRecord, TransferRecord
from sshtrail.states import SessionFlag, joined_flags, split_flags
from sshtrail.transferprotocol import Recognised

log = logging.getLogger(__name__)

SESSIONS = cast(Table, SessionRecord.__table__)
TRANSFERS = cast(Table, TransferRecord.__table__)

PENDING, DONE, FAILED = "pending", "done", "failed"
#: Rows written per INSERT while a session is read.
WRITE_BATCH = 1000


def pending_sessions(conn: Connection, limit: int) -> list[uuid.UUID]:
    query = select(SESSIONS.c.id).where(SESSIONS.c.transfers == PENDING)
    return list(conn.execute(query.order_by(SESSIONS.c.ended_at).limit(limit)).scalars())


def read_transfers(conn: Connection, session_id: uuid.UUID) -> int:
    """Read one session's transfers into ``transfers`` (replacing what it had); the
    number of operations found. The caller commits."""
    row = conn.execute(
        select(SESSIONS.c.request, SESSIONS.c.command, SESSIONS.c.flags).where(
            SESSIONS.c.id == session_id
        )
    ).one()
    conn.execute(delete(TRANSFERS).where(TRANSFERS.c.session_id == session_id))
    batch: list[dict[str, object]] = []
    found = 0

    def emit(operation: FileOperation) -> None:
        nonlocal found
        batch.append(_row(session_id, found, operation))
        found += 1
        if len(batch) >= WRITE_BATCH:
            conn.execute(insert(TRANSFERS), batch)
            batch.clear()

    error = None
    recognised: Recognised | None = None
    try:
        recognised = recognise(conn, session_id, row.request, row.command)
        if recognised is not None and recognised.unreadable is not None:
            error = recognised.unreadable
        elif recognised is not None:
            replay(conn, session_id, parser_for(recognised, emit))
    except (TransferParseError, WireError) as exc:
        error = str(exc)[:4096]
        log.warning("session %s: transfers read up to a problem: %s", session_id, error)
    except (DatabaseError, SQLAlchemyError):
        raise  # the database's trouble, not the session's: the runner retries
    except Exception as exc:  # a parser bug must not stall the group on this session
        error = f"internal error reading transfers: {exc!r}"[:4096]
        log.exception("session %s: transfers could not be read", session_id)
    if batch:
        conn.execute(insert(TRANSFERS), batch)
    if error is not None:
        state: str | None = FAILED
    else:  # a session whose bytes and words are no transfer's is not one: NULL again
        state = DONE if recognised is not None else None
    values: dict[str, str | None] = {"transfers": state, "transfers_error": error}
    if transfer_unrequested(recognised, row.request, row.command):
        values["flags"] = joined_flags(
            [*split_flags(row.flags), SessionFlag.TRANSFER_UNREQUESTED.value]
        )
    conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(**values))
    return found


def _row(session_id: uuid.UUID, idx: int, operation: FileOperation) -> dict[str, object]:
    return {
        "session_id": session_id,
        "idx": idx,
        "t": operation.t,
        "protocol": operation.protocol,
        "op": operation.op,
        "path": operation.path,
        "status": operation.status,
        "path2": operation.path2,
        "bytes": operation.bytes,
        "size": operation.size,
        "sha256": operation.sha256,
        "ranges": operation.ranges,
        "detail": operation.detail,
    }
