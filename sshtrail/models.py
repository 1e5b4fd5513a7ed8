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
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    Uuid,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedAsDataclass, mapped_column, relationship
from sqlalchemy.types import JSON

from sshtrail.dbtypes import NAMING_CONVENTION, SessionText, UTCDateTime
from sshtrail.states import SessionStatus

__all__ = [
    "NAMING_CONVENTION",
    "AccessRecord",
    "Base",
    "ChunkRecord",
    "ConsoleSessionRecord",
    "SessionRecord",
    "TransferRecord",
]


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
    #: When the store group last marked the session ``interrupted`` because its
    #: gateway went silent without ending it (``consumer.interrupted_after_s``),
    #: setting ``ended_at`` to when it was last heard from. Kept for the record:
    #: the mark stands while the session has no end and that ``ended_at`` (which
    #: a later chunk clears); a later end of the gateway's wins.
    interrupted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
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
    #: Bytes of input typed blind: masked by the gateway (not echoed) on lines no screen
    #: showed (sshtrail/maskedinput.py; before schema 0010, every masked byte).
    masked_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: Lines typed blind (Enter keys after masked input no screen showed).
    masked_lines: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: :class:`MaskedInput`, or NULL when nothing was masked.
    masked_input: Mapped[str | None] = mapped_column(String(16), default=None)
    #: :class:`~sshtrail.states.PolicyMark`: the strongest command-policy decision in
    #: the session (``warned``, ``reviewed``, ``rejected``), NULL when it decided
    #: nothing but accept.
    policy: Mapped[str | None] = mapped_column(String(16), default=None)
    #: Bytes masked since the last Enter (a line being typed blind).
    masked_run: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The echoed line being typed (for spotting ``stty -echo``); bounded.
    input_line: Mapped[str | None] = mapped_column(SessionText(256), default=None)
    #: A full-screen program owns the terminal (the alternate screen is on): keys typed
    #: now are its own, not blind input (sshtrail/maskedinput.py).
    full_screen: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Variables a ``read`` filled, or is about to fill, with blind input, for spotting
    #: them handed to ``eval`` (sshtrail/maskedinput.py); bounded.
    masked_reads: Mapped[str | None] = mapped_column(SessionText(256), default=None)
    #: Why the session deserves an auditor's eye: :class:`~sshtrail.states.SessionFlag`
    #: names, sorted and comma-separated; NULL for none (docs/recording.md, "Flags").
    flags: Mapped[str | None] = mapped_column(String(128), default=None)
    #: What the flag detectors follow between batches (consumer/sessionflags.py): a
    #: small JSON object (ASCII), kept as text so a value no store wrote starts them
    #: afresh.
    flag_state: Mapped[str | None] = mapped_column(String(512), default=None)
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
            "status IN ('active', 'closed', 'incomplete', 'refused', 'quarantined', 'interrupted')",
            name="status_known",
        ),
        # A filter on one of these, newest first: the index gives the rows in order
        # (the web console's sessions pages, over 100,000 sessions; migration 0005).
        Index(None, "operator", "started_at"),
        Index(None, "target", "started_at"),
        Index(None, "status", "started_at"),
        Index(None, "started_at"),
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


class AlertRecord(Base):
    """One alert a Sigma rule raised on a session (``consumer/alerter.py``).

    Its id is derived from the session, the chunk, the rule and the event, so a chunk
    read again (a rebalance, a reprocess) raises the same alert, stored once. Not tied
    to ``sessions`` by a foreign key: the alert group does not wait for the store group.
    ``published`` and ``delivered`` are the outbox of the alerts topic and the webhooks.
    """

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(BigInteger)
    t: Mapped[int] = mapped_column(BigInteger)  # ns since session start: the Enter
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    rule_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(SessionText(512))
    level: Mapped[str] = mapped_column(String(16))
    author: Mapped[str] = mapped_column(SessionText(512))
    operator: Mapped[str | None] = mapped_column(SessionText(255))
    target: Mapped[str | None] = mapped_column(SessionText(255))
    command: Mapped[str] = mapped_column(SessionText(4096))
    tags: Mapped[list[str]] = mapped_column(JSON, default_factory=list)
    event: Mapped[dict[str, Any]] = mapped_column(JSON, default_factory=dict)
    published: Mapped[bool] = mapped_column(default=False, server_default=false())
    delivered: Mapped[bool] = mapped_column(default=False, server_default=false())

    __table_args__ = (
        Index(None, "at"),
        Index(None, "session_id"),
        Index(None, "rule_id"),
        Index(None, "published"),
        Index(None, "delivered"),
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


class AccessRecord(Base):
    """One thing an auditor did in the web console: who, what, which session, when,
    from where (``consumer/web/access.py``; ``sshtrail access-log``)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, init=False
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: The auditor's name; for a failed login, the name that was tried.
    auditor: Mapped[str] = mapped_column(SessionText(128))
    #: ``login``, ``login-failed``, ``logout``, ``sessions``, ``view``, ``replay``,
    #: ``search``, ``export``, ``transfers``, ``lag``, ``access-log``, ``denied``.
    action: Mapped[str] = mapped_column(String(32))
    #: The client's address (as the trusted proxy gave it, behind one).
    address: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    #: What was asked: the search text, the filters, the export's format ...
    detail: Mapped[str] = mapped_column(SessionText(2048), default="")
    #: The hash chain the row is in (sshtrail/accesschain.py): one per writing
    #: process, named at its start; NULL for rows written before migration 0006.
    chain: Mapped[str | None] = mapped_column(String(32), default=None)
    #: The row's place in its chain: 0, 1, 2 ...
    n: Mapped[int | None] = mapped_column(BigInteger, default=None)
    #: The digest of row ``n - 1`` of the chain (32 zero bytes for row 0).
    prev: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    #: SHA-256 over ``prev`` and this row's fields, as stored.
    digest: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)

    __table_args__ = (
        Index(None, "at"),
        Index(None, "auditor", "at"),
        Index(None, "session_id"),
        Index(None, "chain", "n", unique=True),
    )


class RefusedChunkRecord(Base):
    """A chunk the store did not take as its session's (``sshtrail/provenance.py``):
    no trusted gateway signed it. Kept as received, with where it came from and why,
    as evidence; ``verify`` and ``show`` list it. Not tied to ``sessions``: a forged
    chunk of a session that does not exist is kept too."""

    __tablename__ = "refused_chunks"

    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(256))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "session_id", "seq"),)


class ConsoleSessionRecord(Base):
    """One sign-in to the web console (``consumer/web/signins.py``), shared by every
    console process on the store: only the SHA-256 of its cookie's token is kept, so
    the table read or copied signs nobody in. Rows stay after they end (expired,
    signed out, revoked) for ``sshtrail web sessions --all``, and are deleted a while
    after they expire."""

    __tablename__ = "console_sessions"

    #: A random public id, shown and revoked by (never the token or its hash).
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: SHA-256 of the 32 random bytes of the cookie's token.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    auditor: Mapped[str] = mapped_column(String(128))
    #: ``password`` or ``oidc``: how they signed in.
    via: Mapped[str] = mapped_column(String(16))
    #: The role, scope, rights and groups granted at sign-in (not re-read from the
    #: settings: an OIDC sign-in's come from the provider's groups then).
    rights: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: When it was last used, written at most about once a minute.
    seen: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: The absolute end (``web.session_hours`` after ``created``).
    expires: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Seconds without use after which it ends (``web.idle_timeout_min``).
    idle_s: Mapped[int] = mapped_column(Integer)
    #: The provider's ID token, the ``id_token_hint`` of its sign-out (OIDC only).
    id_token: Mapped[str | None] = mapped_column(Text, default=None)
    #: When it was ended before its time (signed out or revoked), by whom and why.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(128), default=None)
    revoked_reason: Mapped[str | None] = mapped_column(SessionText(500), default=None)

    __table_args__ = (
        Index(None, "token_hash", unique=True),
        Index(None, "auditor"),
        Index(None, "expires"),
    )


class HoldRecord(Base):
    """A legal hold (``sshtrail hold``): the sessions it names are never deleted, by
    retention or by hand, until it is released. Released holds stay, with who
    released them, when and why: the hold's history (sshtrail/holds.py)."""

    __tablename__ = "holds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Who placed it, when, why, for which case.
    placed_by: Mapped[str] = mapped_column(SessionText(128))
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(SessionText(1024))
    case: Mapped[str] = mapped_column(SessionText(128))
    #: What it holds: one session, or every session matching all the others given.
    session_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    operator: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    target: Mapped[str | None] = mapped_column(SessionText(255), default=None)
    since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    released_by: Mapped[str | None] = mapped_column(SessionText(128), default=None)
    release_reason: Mapped[str | None] = mapped_column(SessionText(1024), default=None)

    __table_args__ = (Index(None, "released_at"),)


class DeletionRecord(Base):
    """The tombstone of a deleted session (sshtrail/tombstone.py): what it was, that
    its chain was intact, and which rule or person deleted it, signed by the deletion
    key. Keyed by session id alone, so a store can later be partitioned by month
    without this table moving."""

    __tablename__ = "deletions"

    session_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    operator: Mapped[str | None] = mapped_column(SessionText(255))
    target: Mapped[str | None] = mapped_column(SessionText(255))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    chunk_count: Mapped[int] = mapped_column(BigInteger)
    byte_count: Mapped[int] = mapped_column(BigInteger)
    #: The chain's last hash as stored, and the verdict of the chunks just before deletion.
    final_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    verdict: Mapped[str] = mapped_column(String(16))
    #: The retention rule that deleted it, or NULL for a deletion by hand.
    rule: Mapped[str | None] = mapped_column(String(249))
    #: ``retention`` for a rule's, else the admin who ran ``sshtrail delete``.
    deleted_by: Mapped[str] = mapped_column(SessionText(128))
    reason: Mapped[str] = mapped_column(SessionText(1024))
    #: The signed body (canonical JSON of the fields above), its Ed25519 signature
    #: and the public key that made it.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    key: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (Index(None, "deleted_at"),)


class AccessTrimRecord(Base):
    """A checkpoint of the access log's chain where ``retention.access_log_keep`` dropped
    its oldest rows (sshtrail/accesstrims.py): the last dropped row's place and digest,
    when, under which setting, signed by the deletion key, so verification starts the
    chain from it instead of from row 0."""

    __tablename__ = "access_log_trims"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The last dropped row of the chain (its n) and its digest.
    n: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: The first row this trim dropped (the one after the previous checkpoint).
    first: Mapped[int] = mapped_column(BigInteger)
    trimmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Rows written before this were dropped: ``trimmed_at`` less ``keep``.
    cutoff: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    keep: Mapped[str] = mapped_column(String(32))
    trimmed_by: Mapped[str] = mapped_column(SessionText(128))
    #: The signed body (canonical JSON of the fields above), its Ed25519 signature
    #: and the public key that made it.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    key: Mapped[bytes] = mapped_column(LargeBinary(32))
