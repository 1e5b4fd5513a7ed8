"""The session store's tables, as SQLAlchemy 2 declarative models -- their one declaration.

One ``DeclarativeBase`` with a shared ``MetaData`` whose naming convention
gives every constraint and index a stable name, so Alembic migrations stay
identical on SQLite and PostgreSQL. Times are timezone-aware UTC everywhere.

The models are also dataclasses (``MappedAsDataclass``): the store group
builds and updates a :class:`SessionRecord` from the chunks it writes
(``consumer/sessionrow.py``) without a second declaration of its columns.
Migrations in ``migrations/`` state each change once more, frozen, as
migrations must.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column, relationship
from sqlalchemy.types import JSON

from sshtrail.states import SessionStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC and made aware again on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: sshtrail stores UTC-aware times only")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


#: The escape character of :class:`SessionText`: "␀0" is a NUL, "␀␀" is "␀" itself.
_ESCAPE = "\u2400"


class SessionText(TypeDecorator[str]):
    """Text that came from a session, stored faithfully even where it holds NUL.

    PostgreSQL's text types cannot hold U+0000, and an operator can put one in
    a command, a TERM or a signal name. It is stored as "␀0" (and a "␀" in the
    text as "␀␀"), reversibly, on both engines; a value longer than the
    column is cut without splitting an escape.
    """

    impl: Any = String
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__(length)
        self.length = length
        if length is None:
            self.impl = Text()

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if "\x00" in value or _ESCAPE in value:
            value = value.replace(_ESCAPE, _ESCAPE * 2).replace("\x00", _ESCAPE + "0")
        if self.length and len(value) > self.length:
            value = value[: self.length]
            escapes = len(value) - len(value.rstrip(_ESCAPE))
            if escapes % 2:  # a lone escape at the cut: drop it
                value = value[:-1]
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or _ESCAPE not in value:
            return value
        out, chars = [], iter(value)
        for char in chars:
            if char == _ESCAPE:
                following = next(chars, "")
                if following == "0":
                    out.append("\x00")
                elif following == _ESCAPE:
                    out.append(_ESCAPE)
                else:  # not written by this type (edited by hand): kept as it is
                    out.append(char + following)
            else:
                out.append(char)
        return "".join(out)


class Base(MappedAsDataclass, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionRecord(Base):
    """One recorded SSH session (one channel through the gateway).

    Built up from its chunks, which may arrive in any order relative to each
    other after a re-delivery; so every column but the id may still be empty.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    operator: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    client: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    target: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    target_host: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    target_port: Mapped[int | None] = mapped_column(Integer, default=None)
    target_user: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    gateway: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    term: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    #: What the channel asked for: ``shell``, ``exec``, ``subsystem`` or
    #: ``direct-tcpip`` (a forwarded connection); empty for a refused login.
    request: Mapped[str | None] = mapped_column(String(16), default=None)
    #: The exec command, the subsystem name or the forwarding destination (cut).
    command: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_chunk_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.ACTIVE)
    #: SSH exit statuses are unsigned 32-bit: wider than a signed ``Integer``.
    exit_status: Mapped[int | None] = mapped_column(BigInteger, default=None)
    exit_signal: Mapped[str | None] = mapped_column(SessionText(64), default=None)
    end_reason: Mapped[str | None] = mapped_column(SessionText(), default=None)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: Inclusive ranges of missing seqs, e.g. ``[[3, 5]]``.
    gaps: Mapped[list[list[int]]] = mapped_column(JSON, default_factory=list)
    final_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(64), default=None)
    signing_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    #: Whether the stored chain linked up and the end signature verified under
    #: ``signing_key`` when last checked; set to NULL by a trigger whenever a
    #: stored chunk is changed or deleted, so readers check again
    #: (``sshtrail/verification.py``).
    verified: Mapped[bool | None] = mapped_column(default=None)
    #: Why the session is quarantined (the database refused chunks of it).
    quarantine_reason: Mapped[str | None] = mapped_column(SessionText(), default=None)
    #: Bytes of input withheld from the recording because they were not echoed.
    masked_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Lines (Enter keys) typed while input was masked.
    masked_lines: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: :class:`MaskedInput`, or NULL when nothing was masked.
    masked_input: Mapped[str | None] = mapped_column(String(16), default=None)
    #: Bytes masked since the last Enter (a line being typed blind).
    masked_run: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The echoed line being typed (for spotting ``stty -echo``); bounded.
    input_line: Mapped[str | None] = mapped_column(SessionText(256), default=None)
    #: File transfers (SFTP, SCP) read from the recording: NULL for a session that
    #: is not one, ``pending`` until the store group has read it, then ``done``
    #: or ``failed`` (``transfers_error`` says why; what was read is kept).
    transfers: Mapped[str | None] = mapped_column(String(16), default=None)
    transfers_error: Mapped[str | None] = mapped_column(SessionText(), default=None)

    chunks: Mapped[list[ChunkRecord]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChunkRecord.seq",
        init=False,
        repr=False,
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'closed', 'incomplete', 'refused', 'quarantined')",
            name="status_known",
        ),
        Index(None, "operator"),
        Index(None, "target"),
        Index(None, "started_at"),
        Index(None, "status"),
    )


class TransferRecord(Base):
    """One file operation of an SFTP or SCP session (``consumer/transfers.py``)."""

    __tablename__ = "transfers"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, init=False
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE")
    )
    #: Its place among the session's operations, from 0.
    idx: Mapped[int] = mapped_column(Integer)
    t: Mapped[int] = mapped_column(BigInteger)  # ns since session start: when answered
    protocol: Mapped[str] = mapped_column(String(8))
    op: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(SessionText(4096))
    status: Mapped[str] = mapped_column(SessionText(512))
    path2: Mapped[str | None] = mapped_column(SessionText(4096), default=None)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    ranges: Mapped[str | None] = mapped_column(Text, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default_factory=dict)

    __table_args__ = (
        Index(None, "session_id", "idx", unique=True),
        Index(None, "path"),
        Index(None, "op"),
    )


class ChunkRecord(Base):
    """One chunk exactly as received, so the hash chain can be verified again."""

    __tablename__ = "chunks"

    session_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    t_first: Mapped[int] = mapped_column(BigInteger)  # ns since session start
    t_last: Mapped[int] = mapped_column(BigInteger)
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    session: Mapped[SessionRecord] = relationship(back_populates="chunks", init=False, repr=False)
