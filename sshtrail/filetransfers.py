"""The file transfers in a stored SFTP or SCP session: which protocol its first bytes
or its words say (sshtrail/transferprotocol.py), the stored bytes through that
protocol's parser, and one file's content taken out again.

The store group reads every ended transfer session once into ``transfers``
(``consumer/transfers.py``); ``sshtrail export --transfer N`` reads one
session again to take a file's bytes out of the recording, which is the only
copy of them sshtrail keeps (docs/decisions.md, "Transferred files").
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Connection

from sshtrail import transferprotocol
from sshtrail.errors import InvalidError, WireError
from sshtrail.events import End, Input, Output
from sshtrail.fileops import Capture, Copy, FileOperation, TransferParseError
from sshtrail.scp import ScpParser
from sshtrail.sftp import SftpParser
from sshtrail.tables import CHUNKS
from sshtrail.transferprotocol import SCP, SNIFF_BYTES, Recognised, by_words, may_carry
from sshtrail.transferqueries import StoredTransfer
from sshtrail.wire import decode_chunk

#: Chunks fetched from the database at a time.
FETCH_CHUNKS = 32
#: Chunks whose bytes are looked at to tell a transfer protocol (the first holds the
#: request; a client may trickle its first bytes over a few).
SNIFF_CHUNKS = 16


class Parser(Protocol):
    def client(self, t: int, data: bytes) -> None: ...
    def server(self, t: int, data: bytes) -> None: ...
    def finish(self, t: int) -> None: ...


def transfer_protocol(request: str | None, command: str | None) -> str | None:
    """``"sftp"`` or ``"scp"`` for a session whose request's words name one; None
    otherwise. Its bytes may say more: :func:`recognise`."""
    found = by_words(request, command)
    return found.protocol if found is not None else None


def recognise(
    conn: Connection, session_id: uuid.UUID, request: str | None, command: str | None
) -> Recognised | None:
    """The transfer protocol of a stored session, by its first bytes or its words
    (:mod:`sshtrail.transferprotocol`); None for a session that is no transfer. Reads
    at most :data:`SNIFF_CHUNKS` chunks; raises :class:`~sshtrail.errors.WireError`."""
    if not may_carry(request):
        return None
    client, server, ended = first_bytes(conn, session_id)
    return transferprotocol.recognise(request, command, client, server, ended)


def first_bytes(conn: Connection, session_id: uuid.UUID) -> tuple[bytes, bytes, bool]:
    """The first :data:`~sshtrail.transferprotocol.SNIFF_BYTES` the client sent and the
    target answered on its standard output, from the first :data:`SNIFF_CHUNKS`
    chunks; and whether the session ended within them."""
    client, server = bytearray(), bytearray()
    query = (
        select(CHUNKS.c.data)
        .where(CHUNKS.c.session_id == session_id)
        .order_by(CHUNKS.c.seq)
        .limit(SNIFF_CHUNKS)
    )
    for data in conn.execute(query).scalars():
        for event in decode_chunk(data).events:
            if isinstance(event, Input) and len(client) < SNIFF_BYTES:
                client += event.data[: SNIFF_BYTES - len(client)]
            elif isinstance(event, Output) and not event.stderr and len(server) < SNIFF_BYTES:
                server += event.data[: SNIFF_BYTES - len(server)]
            elif isinstance(event, End):
                return bytes(client), bytes(server), True
        if len(client) >= SNIFF_BYTES and len(server) >= SNIFF_BYTES:
            break
    return bytes(client), bytes(server), False


def parser_for(
    recognised: Recognised, emit: Callable[[FileOperation], None], capture: Capture | None = None
) -> Parser:
    if recognised.protocol == SCP:
        assert recognised.scp is not None
        return ScpParser(recognised.scp, emit, capture)
    return SftpParser(emit, capture)


def replay(conn: Connection, session_id: uuid.UUID, parser: Parser) -> None:
    """The session's stored bytes through ``parser``, in recorded order. Raises the
    parser's :class:`~sshtrail.fileops.TransferParseError` and the decoder's
    :class:`~sshtrail.errors.WireError`."""
    last = 0
    for data in chunk_data(conn, session_id):
        for event in decode_chunk(data).events:
            if isinstance(event, Input):
                parser.client(event.t, event.data)
            elif isinstance(event, Output) and not event.stderr:
                parser.server(event.t, event.data)
            elif isinstance(event, End):
                last = event.t
    parser.finish(last)


def chunk_data(conn: Connection, session_id: uuid.UUID) -> Iterator[bytes]:
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


class TooLarge(InvalidError):
    """The file is larger than the export allows."""


def extract(
    conn: Connection, transfer: StoredTransfer, out: BinaryIO, max_bytes: int
) -> FileOperation:
    """Write the bytes of one stored transfer to ``out``, in file order (bytes that
    never moved are zeros); the operation as read again. The session is read again
    from its chunks; every file it opened at the same path is copied to a scratch
    file until the wanted operation comes by."""
    wanted_index, path = transfer.index, transfer.path
    seen = 0
    chosen: _Scratch | None = None
    operation: FileOperation | None = None
    copies: list[_Scratch] = []
    with tempfile.TemporaryDirectory(prefix="sshtrail-export-") as scratch:

        def capture(opened: str) -> Copy | None:
            if opened != path:
                return None
            copy = _Scratch(Path(scratch) / str(len(copies)), max_bytes)
            copies.append(copy)
            return copy

        def emit(found: FileOperation) -> None:
            nonlocal seen, chosen, operation
            if seen == wanted_index:
                operation = found
                chosen = found.content if isinstance(found.content, _Scratch) else None
            elif isinstance(found.content, _Scratch) and found.content is not chosen:
                found.content.close()  # another file at that path: not this one
            seen += 1

        stopped = None
        try:
            found = recognise(conn, transfer.session_id, transfer.request, transfer.command)
            if found is None:
                raise InvalidError("that session is not an SFTP or SCP session")
            if found.unreadable is not None:
                raise InvalidError(f"the session's transfers cannot be read: {found.unreadable}")
            replay(conn, transfer.session_id, parser_for(found, emit, capture))
        except (TransferParseError, WireError) as exc:
            # What was read before the stream broke holds; only what comes after is lost.
            stopped = str(exc)
        finally:
            for copy in copies:
                if copy is not chosen:
                    copy.close()
        if operation is None and stopped is not None:
            raise InvalidError(
                f"the session's transfers could not be read as far as operation "
                f"{wanted_index}: {stopped}"
            )
        if operation is None or chosen is None:
            raise InvalidError(f"operation {wanted_index} of the session moved no file bytes")
        try:
            chosen.copy_to(out)
        finally:
            chosen.close()
    return operation


class _Scratch:
    """One file's bytes, put where they belong, in a scratch file (bounded)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._max = max_bytes
        self.size = 0

    def __call__(self, offset: int, data: bytes | memoryview) -> None:
        end = offset + len(data)
        if end > self._max:
            raise TooLarge(f"the file is larger than the export allows ({self._max} bytes)")
        os.pwrite(self._fd, data, offset)
        self.size = max(self.size, end)

    def copy_to(self, out: BinaryIO) -> None:
        at = 0
        while at < self.size:
            piece = os.pread(self._fd, min(1 << 20, self.size - at), at)
            if not piece:  # a hole at the end: the bytes that never moved
                piece = b"\0" * min(1 << 20, self.size - at)
            out.write(piece)
            at += len(piece)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
