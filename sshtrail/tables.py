"""The store's tables as SQLAlchemy Core -- generated from sshtrail/models.py by
``python -m sshtrail.tablegen sshtrail/tables.py``; do not edit.

For reading the store without importing the ORM (sshtrail/tablegen.py says why).
Columns, types and keys only: constraints and indexes are the migrations' business.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
)

from sshtrail.dbtypes import NAMING_CONVENTION, SessionText, UTCDateTime

METADATA = MetaData(naming_convention=NAMING_CONVENTION)


ACCESS_LOG = Table(
    "access_log",
    METADATA,
    Column("id", BigInteger(), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("auditor", SessionText(128), nullable=False),
    Column("action", String(length=32), nullable=False),
    Column("address", String(length=64), nullable=False),
    Column("session_id", Uuid()),
    Column("detail", SessionText(2048), nullable=False),
    Column("chain", String(length=32)),
    Column("n", BigInteger()),
    Column("prev", LargeBinary(length=32)),
    Column("digest", LargeBinary(length=32)),
)


ACCESS_LOG_TRIMS = Table(
    "access_log_trims",
    METADATA,
    Column("chain", String(length=32), primary_key=True),
    Column("n", BigInteger(), primary_key=True),
    Column("digest", LargeBinary(length=32), nullable=False),
    Column("first", BigInteger(), nullable=False),
    Column("trimmed_at", UTCDateTime(), nullable=False),
    Column("cutoff", UTCDateTime(), nullable=False),
    Column("keep", String(length=32), nullable=False),
    Column("trimmed_by", SessionText(128), nullable=False),
    Column("body", LargeBinary(), nullable=False),
    Column("signature", LargeBinary(length=64), nullable=False),
    Column("key", LargeBinary(length=32), nullable=False),
)


ALERTS = Table(
    "alerts",
    METADATA,
    Column("id", String(length=32), primary_key=True),
    Column("session_id", Uuid(), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("t", BigInteger(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("rule_id", String(length=64), nullable=False),
    Column("title", SessionText(512), nullable=False),
    Column("level", String(length=16), nullable=False),
    Column("author", SessionText(512), nullable=False),
    Column("operator", SessionText(255)),
    Column("target", SessionText(255)),
    Column("command", SessionText(4096), nullable=False),
    Column("tags", JSON(), nullable=False),
    Column("event", JSON(), nullable=False),
    Column("published", Boolean(), nullable=False),
    Column("delivered", Boolean(), nullable=False),
)


CONSOLE_SESSIONS = Table(
    "console_sessions",
    METADATA,
    Column("id", String(length=32), primary_key=True),
    Column("token_hash", LargeBinary(length=32), nullable=False),
    Column("auditor", String(length=128), nullable=False),
    Column("via", String(length=16), nullable=False),
    Column("rights", JSON(), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("seen", UTCDateTime(), nullable=False),
    Column("expires", UTCDateTime(), nullable=False),
    Column("idle_s", Integer(), nullable=False),
    Column("id_token", Text()),
    Column("revoked_at", UTCDateTime()),
    Column("revoked_by", String(length=128)),
    Column("revoked_reason", SessionText(500)),
)


DELETIONS = Table(
    "deletions",
    METADATA,
    Column("session_id", Uuid(), primary_key=True),
    Column("deleted_at", UTCDateTime(), nullable=False),
    Column("operator", SessionText(255)),
    Column("target", SessionText(255)),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("chunk_count", BigInteger(), nullable=False),
    Column("byte_count", BigInteger(), nullable=False),
    Column("final_digest", LargeBinary(length=32)),
    Column("verdict", String(length=16), nullable=False),
    Column("rule", String(length=249)),
    Column("deleted_by", SessionText(128), nullable=False),
    Column("reason", SessionText(1024), nullable=False),
    Column("body", LargeBinary(), nullable=False),
    Column("signature", LargeBinary(length=64), nullable=False),
    Column("key", LargeBinary(length=32), nullable=False),
)


HOLDS = Table(
    "holds",
    METADATA,
    Column("id", String(length=32), primary_key=True),
    Column("placed_by", SessionText(128), nullable=False),
    Column("placed_at", UTCDateTime(), nullable=False),
    Column("reason", SessionText(1024), nullable=False),
    Column("case", SessionText(128), nullable=False),
    Column("session_id", Uuid()),
    Column("operator", SessionText(255)),
    Column("target", SessionText(255)),
    Column("since", UTCDateTime()),
    Column("until", UTCDateTime()),
    Column("released_at", UTCDateTime()),
    Column("released_by", SessionText(128)),
    Column("release_reason", SessionText(1024)),
)


REFUSED_CHUNKS = Table(
    "refused_chunks",
    METADATA,
    Column("partition", Integer(), primary_key=True),
    Column("offset", BigInteger(), primary_key=True),
    Column("session_id", Uuid(), nullable=False),
    Column("seq", BigInteger(), nullable=False),
    Column("reason", String(length=256), nullable=False),
    Column("data", LargeBinary(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
)


SESSIONS = Table(
    "sessions",
    METADATA,
    Column("id", Uuid(), primary_key=True),
    Column("operator", SessionText(255)),
    Column("client", SessionText(255)),
    Column("target", SessionText(255)),
    Column("target_host", SessionText(255)),
    Column("target_port", Integer()),
    Column("target_user", SessionText(255)),
    Column("gateway", SessionText(255)),
    Column("term", SessionText(255)),
    Column("request", String(length=16)),
    Column("command", SessionText(255)),
    Column("started_at", UTCDateTime()),
    Column("ended_at", UTCDateTime()),
    Column("last_chunk_at", UTCDateTime()),
    Column("interrupted_at", UTCDateTime()),
    Column("status", String(length=16), nullable=False),
    Column("exit_status", BigInteger()),
    Column("exit_signal", SessionText(64)),
    Column("end_reason", SessionText()),
    Column("bytes_in", BigInteger(), nullable=False),
    Column("bytes_out", BigInteger(), nullable=False),
    Column("chunk_count", BigInteger(), nullable=False),
    Column("last_seq", BigInteger()),
    Column("gaps", JSON(), nullable=False),
    Column("final_digest", LargeBinary(length=32)),
    Column("signature", LargeBinary(length=64)),
    Column("signing_key", LargeBinary(length=32)),
    Column("verified", Boolean()),
    Column("quarantine_reason", SessionText()),
    Column("masked_bytes", BigInteger(), nullable=False),
    Column("masked_lines", BigInteger(), nullable=False),
    Column("masked_input", String(length=16)),
    Column("policy", String(length=16)),
    Column("masked_run", BigInteger(), nullable=False),
    Column("input_line", SessionText(256)),
    Column("full_screen", Boolean(), nullable=False),
    Column("masked_reads", SessionText(256)),
    Column("flags", String(length=128)),
    Column("flag_state", String(length=512)),
    Column("transfers", String(length=16)),
    Column("transfers_error", SessionText()),
)


CHUNKS = Table(
    "chunks",
    METADATA,
    Column("session_id", Uuid(), ForeignKey("sessions.id"), primary_key=True),
    Column("seq", BigInteger(), primary_key=True),
    Column("t_first", BigInteger(), nullable=False),
    Column("t_last", BigInteger(), nullable=False),
    Column("partition", Integer(), nullable=False),
    Column("offset", BigInteger(), nullable=False),
    Column("data", LargeBinary(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
)


TRANSFERS = Table(
    "transfers",
    METADATA,
    Column("id", BigInteger(), primary_key=True),
    Column("session_id", Uuid(), ForeignKey("sessions.id"), nullable=False),
    Column("idx", Integer(), nullable=False),
    Column("t", BigInteger(), nullable=False),
    Column("protocol", String(length=8), nullable=False),
    Column("op", String(length=16), nullable=False),
    Column("path", SessionText(4096), nullable=False),
    Column("status", SessionText(512), nullable=False),
    Column("path2", SessionText(4096)),
    Column("bytes", BigInteger(), nullable=False),
    Column("size", BigInteger()),
    Column("sha256", String(length=64)),
    Column("ranges", Text()),
    Column("detail", JSON(), nullable=False),
)
