"""File transfers read back from stored SFTP and SCP sessions, into ``transfers``.

The gateway records an SFTP or SCP session as it records any other: bytes
in, bytes out. Understanding them is the store group's work, after the
session has ended and every chunk of it is stored (the row's ``transfers``
column says ``pending``): :func:`read_transfers` replays the stored chunks,
in order and one at a time, through the protocol's parser and writes each
operation as a ``transfers`` row, in batches. A stream the parser cannot
follow marks the session ``failed`` with the reason; the operations read
up to there stay. Nothing here can stop the group: a session is read once,
whatever it holds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Protocol, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from consumer.fileops import FileOperation, TransferParseError
from consumer.scp import ScpParser, scp_mode
from consumer.sftp import SftpParser
from sshtrail.errors import DatabaseError, WireError
from sshtrail.events import End, Input, Output
from sshtrail.models import ChunkRecord, SessionRecord, TransferRecord
from sshtrail.wire import decode_chunk

log = logging.getLogger(__name__)

SESSIONS = cast(Table, SessionRecord.__table__)
CHUNKS = cast(Table, ChunkRecord.__table__)
TRANSFERS = cast(Table, TransferRecord.__table__)

PENDING, DONE, FAILED = "pending", "done", "failed"
#: Rows written per INSERT while a session is read.
WRITE_BATCH = 1000
#: Chunks fetched from the database at a time.
FETCH_CHUNKS = 32


class Parser(Protocol):
    def client(self, t: int, data: bytes) -> None: ...
    def server(self, t: int, data: bytes) -> None: ...
    def finish(self, t: int) -> None: ...


def transfer_protocol(request: str | None, command: str | None) -> str | None:
    """ "sftp" or "scp" for a session whose channel speaks one of them; None otherwise."""
    if request == "subsystem" and command == "sftp":
        return "sftp"
    if request == "exec" and command and scp_mode(command) is not None:
        return "scp"
    return None


def parser_for(
    request: str | None, command: str | None, emit: Callable[[FileOperation], None]
) -> Parser | None:
    protocol = transfer_protocol(request, command)
    if protocol == "sftp":
        return SftpParser(emit)
    if protocol == "scp":
        assert command is not None
        return ScpParser(command, emit)
    return None


def pending_sessions(conn: Connection, limit: int) -> list[uuid.UUID]:
    query = select(SESSIONS.c.id).where(SESSIONS.c.transfers == PENDING)
    return list(conn.execute(query.order_by(SESSIONS.c.ended_at).limit(limit)).scalars())


def read_transfers(conn: Connection, session_id: uuid.UUID) -> int:
    """Read one session's transfers into ``transfers`` (replacing what it had); the
    number of operations found. The caller commits."""
    row = conn.execute(
        select(SESSIONS.c.request, SESSIONS.c.command).where(SESSIONS.c.id == session_id)
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
    parser = parser_for(row.request, row.command, emit)
    if parser is not None:
        try:
            _replay(conn, session_id, parser)
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
    state = {"transfers": FAILED if error else DONE, "transfers_error": error}
    conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(**state))
    return found


def _replay(conn: Connection, session_id: uuid.UUID, parser: Parser) -> None:
    last = 0
    for data in _chunks(conn, session_id):
        for event in decode_chunk(data).events:
            if isinstance(event, Input):
                parser.client(event.t, event.data)
            elif isinstance(event, Output) and not event.stderr:
                parser.server(event.t, event.data)
            elif isinstance(event, End):
                last = event.t
    parser.finish(last)


def _chunks(conn: Connection, session_id: uuid.UUID) -> Iterator[bytes]:
    """The session's stored chunks in order, a few at a time (a session may be GBs)."""
    seq = -1
    while True:
        query = (
            select(CHUNKS.c.seq, CHUNKS.c.data)
            .where(CHUNKS.c.session_id == session_id, CHUNKS.c.seq > seq)
            .order_by(CHUNKS.c.seq)
            .limit(FETCH_CHUNKS)
        )
        rows = conn.execute(query).all()
        if not rows:
            return
        seq = rows[-1].seq
        for row in rows:
            yield row.data


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
