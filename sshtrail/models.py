"""The session store's tables, as SQLAlchemy 2 declarative models.

One ``DeclarativeBase`` with a shared ``MetaData`` whose naming convention
gives every constraint and index a stable name, so Alembic migrations stay
identical on SQLite and PostgreSQL. Times are timezone-aware UTC everywhere.
"""

from __future__ import annotations

import datetime as dt
import enum
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
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import JSON

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"  # start seen, end not yet
    CLOSED = "closed"  # end seen, no gaps
    INCOMPLETE = "incomplete"  # gaps, or no end long after the session went quiet


class SessionRecord(Base):
    """One recorded SSH session (one channel through the gateway).

    Built up from its chunks, which may arrive in any order relative to each
    other after a re-delivery; so every column but the id may still be empty.
    """

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    operator: Mapped[str | None] = mapped_column(String(255))
    client: Mapped[str | None] = mapped_column(String(255))
    target: Mapped[str | None] = mapped_column(String(255))
    target_host: Mapped[str | None] = mapped_column(String(255))
    target_port: Mapped[int | None] = mapped_column(Integer)
    target_user: Mapped[str | None] = mapped_column(String(255))
    gateway: Mapped[str | None] = mapped_column(String(255))
    term: Mapped[str | None] = mapped_column(String(255))
    #: What the channel asked for: ``shell``, ``exec``, ``subsystem`` or
    #: ``direct-tcpip`` (a forwarded connection); empty for a refused login.
    request: Mapped[str | None] = mapped_column(String(16))
    #: The exec command, the subsystem name or the forwarding destination (cut).
    command: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_chunk_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.ACTIVE)
    exit_status: Mapped[int | None] = mapped_column(Integer)
    exit_signal: Mapped[str | None] = mapped_column(String(64))
    end_reason: Mapped[str | None] = mapped_column(Text)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    chunk_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    #: Inclusive ranges of missing seqs, e.g. ``[[3, 5]]``.
    gaps: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    final_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    signing_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    verified: Mapped[bool | None] = mapped_column()

    chunks: Mapped[list[ChunkRecord]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ChunkRecord.seq",
    )

    __table_args__ = (
        CheckConstraint("status IN ('active', 'closed', 'incomplete')", name="status_known"),
        Index(None, "operator"),
        Index(None, "target"),
        Index(None, "started_at"),
        Index(None, "status"),
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

    session: Mapped[SessionRecord] = relationship(back_populates="chunks")
