"""The search index: its tables, and substring search over them on SQLite or PostgreSQL.

Both backends share the tables below (created by :func:`ensure_schema`, not by
Alembic: the index is derived data that ``sshtrail index --rebuild`` can throw
away, and on SQLite it lives in a file of its own). They differ in how a
substring is found fast:

* SQLite: an FTS5 table with the ``trigram`` tokenizer over ``search_docs``
  (external content, fed by a trigger) -- case-insensitive substring
  ``MATCH`` for three characters or more, ``LIKE`` below that;
* PostgreSQL: a ``pg_trgm`` GIN index on ``search_docs.text`` serving
  ``ILIKE '%...%'``; ``search_docs`` partitioned by the month its sessions
  started in (sshtrail/searchmonths.py), in an index made at schema 7 or later.

The index's schema has a version of its own in ``search_meta``; an index
written by an older sshtrail is brought up to date by :func:`ensure_schema`
(small ``ALTER TABLE`` steps, the same on both engines), and anything that
needs re-deriving from the recordings is rebuilt by ``sshtrail index
--rebuild``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    and_,
    false,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.sql.elements import ColumnElement

from sshtrail import describe, searchmonths
from sshtrail.dbtypes import NAMING_CONVENTION, UTCDateTime
from sshtrail.errors import DatabaseError, InvalidError, NotSetUp
from sshtrail.partitions import partitioned
from sshtrail.scope import Scope
from sshtrail.states import Kind, MaskedInput
from sshtrail.transferqueries import TransferFilter, escape_like, list_transfers

log = logging.getLogger(__name__)

METADATA = MetaData(naming_convention=NAMING_CONVENTION)

#: One indexed line: an output line, a command, or a session's metadata.
DOCS = Table(
    "search_docs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Uuid, nullable=False),
    Column("kind", String(8), nullable=False),
    #: n-th document of this kind in the session: replaying a session gives
    #: the same numbers, which is what makes indexing idempotent.
    Column("ordinal", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),  # chunk that completed it
    Column("t", BigInteger, nullable=False),  # ns since the session started
    Column("at", UTCDateTime, nullable=True),  # wall clock: started_at + t
    Column("operator", String(255), nullable=True),
    Column("target", String(255), nullable=True),
    Column("text", Text, nullable=False),
    #: False for a command whose prompt could not be told apart from it.
    Column("certain", Boolean, nullable=False, server_default=text("TRUE")),
    UniqueConstraint("session_id", "kind", "ordinal"),
    Index(None, "session_id", "t"),
    Index(None, "operator"),
    Index(None, "target"),
    Index(None, "at"),
)

#: Where indexing of each session stands, so any member can continue it.
SESSIONS = Table(
    "search_sessions",
    METADATA,
    Column("session_id", Uuid, primary_key=True),
    Column("next_seq", BigInteger, nullable=False),
    Column("operator", String(255)),
    Column("target", String(255)),
    Column("started_at", UTCDateTime),
    Column("ended", Boolean, nullable=False),
    #: Why indexing this session stopped (it could not be processed); NULL if it did not.
    Column("quarantine_reason", Text),
    #: :class:`~sshtrail.models.MaskedInput` of the session, as the store has it too.
    Column("masked_input", String(16)),
    #: The next document number of each kind (``command=3,output=17``): a member
    #: taking the session over from its last kept chunks numbers on from there.
    Column("ordinals", Text),
    #: The exit status the session's command or shell ended with, if it ended so.
    Column("exit_status", BigInteger),
    #: SHA-256 (hex) of chunk ``next_seq - 1``, the last one indexed: with ``next_seq``
    #: and ``ended``, what this witness saw, which the store must agree with
    #: (``sshtrail verify --cross-check``, sshtrail/crosscheck.py).
    Column("last_digest", String(64)),
    #: Whether the session is flagged ``uncertain-prompt`` (sshtrail/promptrun.py).
    Column("uncertain_prompt", Boolean, nullable=False, server_default=text("FALSE")),
    #: Flagged sessions are few: listings find them without reading every row.
    Index(
        "ix_search_sessions_uncertain_prompt",
        "session_id",
        sqlite_where=text("uncertain_prompt"),
        postgresql_where=text("uncertain_prompt"),
    ),
)

#: The index's own schema version (the index is not Alembic's: see the module text).
META = Table(
    "search_meta",
    METADATA,
    Column("key", String(32), primary_key=True),
    Column("value", String(64), nullable=False),
)
SCHEMA_VERSION = 7
#: How an index of each older version is brought up to date, step by step.
_UPGRADES: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE search_sessions ADD COLUMN quarantine_reason TEXT",
        "ALTER TABLE search_sessions ADD COLUMN masked_input VARCHAR(16)",
    ),
    2: ("ALTER TABLE search_sessions ADD COLUMN ordinals TEXT",),
    # Screens of full-screen programs, and commands read with less certainty, are
    # new in the documents: 'sshtrail index --rebuild' derives them for old sessions.
    3: (
        "ALTER TABLE search_docs ADD COLUMN certain BOOLEAN NOT NULL DEFAULT TRUE",
        "ALTER TABLE search_sessions ADD COLUMN exit_status BIGINT",
    ),
    # Sessions indexed before have no digest: the cross-check compares their seqs only.
    4: ("ALTER TABLE search_sessions ADD COLUMN last_digest VARCHAR(64)",),
    # Sessions indexed before are not flagged: 'sshtrail index --rebuild' flags them.
    5: (
        "ALTER TABLE search_sessions ADD COLUMN uncertain_prompt BOOLEAN NOT NULL DEFAULT FALSE",
        "CREATE INDEX IF NOT EXISTS ix_search_sessions_uncertain_prompt "
        "ON search_sessions (session_id) WHERE uncertain_prompt",
    ),
    # Documents partitioned by month on PostgreSQL (sshtrail/searchmonths.py) in an index
    # made from now on: an older one stays a plain table, 'sshtrail index --rebuild'
    # partitions it (ensure_schema says so in its log).
    6: (),
}

#: The chunks of sessions still open: a member taking a session over replays
#: them into a fresh terminal emulator. Deleted when the session ends.
BACKLOG = Table(
    "search_backlog",
    METADATA,
    Column("session_id", Uuid, primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

_SQLITE_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5("
    "text, content='search_docs', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS search_docs_fts AFTER INSERT ON search_docs BEGIN "
    "INSERT INTO search_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER IF NOT EXISTS search_docs_fts_delete AFTER DELETE ON search_docs BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
)
_POSTGRES_DDL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS ix_search_docs_text_trgm ON search_docs "
    "USING gin (text gin_trgm_ops)",
)


def ensure_schema(engine: Engine) -> None:
    """Create the index's tables if missing, or bring an older index up to date
    (idempotent, safe from several members at once)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two members starting at once must not race on CREATE EXTENSION.
            conn.execute(text("SELECT pg_advisory_xact_lock(7421)"))
        had_index = inspect(conn).has_table(SESSIONS.name)
        if engine.dialect.name == "postgresql" and not inspect(conn).has_table(DOCS.name):
            searchmonths.create(conn, dt.datetime.now(dt.UTC), DOCS)
        METADATA.create_all(conn)
        for statement in _SQLITE_DDL if engine.dialect.name == "sqlite" else _POSTGRES_DDL:
            conn.execute(text(statement))
        found = conn.execute(select(META.c.value).where(META.c.key == "schema")).scalar()
        version = int(found) if found is not None else (1 if had_index else SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise SearchSchemaError(
                f"the search index is at schema {version}, newer than this version of "
                f"sshtrail knows ({SCHEMA_VERSION}): upgrade sshtrail"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in _UPGRADES[step]:
                conn.execute(text(statement))
        if found is None:
            conn.execute(META.insert().values(key="schema", value=str(SCHEMA_VERSION)))
        elif version != SCHEMA_VERSION:
            conn.execute(
                META.update().where(META.c.key == "schema").values(value=str(SCHEMA_VERSION))
            )
        if engine.dialect.name == "postgresql" and not partitioned(conn, DOCS.name):
            log.warning(
                "the search index's documents are not partitioned by month (an index made "
                "before sshtrail's index schema 7): searches answer as before, but retention "
                "deletes their rows one by one; 'sshtrail index --rebuild' partitions them"
            )


class SearchSchemaError(InvalidError):
    """The search index was written by a newer sshtrail."""


def drop_schema(engine: Engine) -> None:
    """Remove the index entirely (before a rebuild)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TABLE IF EXISTS search_fts"))
        METADATA.drop_all(conn)


@dataclass(frozen=True, slots=True)
class Query:
    """A search: a substring (case-insensitive) and optional filters."""

    text: str
    kind: Kind | None = None
    operator: str | None = None
    target: str | None = None
    session_id: uuid.UUID | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    #: Only sessions with masked input (``masked``), or marked ``suspicious``.
    masked_input: MaskedInput | None = None
    #: Only sessions that ended with this exit status.
    exit_status: int | None = None
    #: Only sessions an auditor may see (the web console).
    scope: Scope | None = None


#: The columns a :class:`Hit` is made of, in its field order.
_HIT_COLUMNS = ("session_id", "kind", "t", "at", "operator", "target", "text", "certain")


@dataclass(frozen=True, slots=True)
class Hit:
    session_id: uuid.UUID
    kind: Kind
    t: int
    at: dt.datetime | None
    operator: str | None
    target: str | None
    text: str
    certain: bool = True

    def matches(self, needle: str) -> list[tuple[int, int]]:
        """Where ``needle`` occurs in :attr:`text` (case-insensitive): (start, end)
        character offsets, not overlapping."""
        lowered, wanted = self.text.lower(), needle.lower()
        found, start = [], 0
        while wanted and (at := lowered.find(wanted, start)) >= 0:
            found.append((at, at + len(wanted)))
            start = at + len(wanted)
        return found


def search(conn: Connection, query: Query, fence: bool | None = None) -> list[Hit]:
    """Documents containing ``query.text``, oldest first. ``fence``: see :func:`statement`."""
    return [Hit(*row) for row in conn.execute(statement(conn, query, fence))]


def statement(conn: Connection, query: Query, fence: bool | None = None) -> Select[Any]:
    """The query behind :func:`search`. On PostgreSQL ``fence`` says whether the
    matches are found first, in a ``MATERIALIZED`` CTE, then ordered; None (what
    ``sshtrail search`` and the console use) leaves that to :func:`fenced`."""
    if not query.text:
        raise ValueError("the search text is empty")
    conditions: list[ColumnElement[bool]] = [_contains(conn, query.text)]
    for column, value in (
        ("kind", query.kind),
        ("operator", query.operator),
        ("target", query.target),
        ("session_id", query.session_id),
    ):
        if value is not None:
            conditions.append(DOCS.c[column] == value)
    if query.since is not None:
        conditions.append(DOCS.c.at >= query.since)
    if query.until is not None:
        conditions.append(DOCS.c.at < query.until)
    if query.masked_input is not None:
        masked = SESSIONS.c.masked_input.in_(query.masked_input.at_least())
        conditions.append(DOCS.c.session_id.in_(select(SESSIONS.c.session_id).where(masked)))
    if query.scope is not None and not query.scope.everything:
        conditions.append(query.scope.condition(conn.dialect.name, DOCS.c.operator, DOCS.c.target))
    if query.exit_status is not None:
        ended = SESSIONS.c.exit_status == query.exit_status
        conditions.append(DOCS.c.session_id.in_(select(SESSIONS.c.session_id).where(ended)))
    names = _HIT_COLUMNS
    matches = select(*(DOCS.c[n] for n in names), DOCS.c.id).where(and_(*conditions))
    if conn.dialect.name == "postgresql" and (fenced(query) if fence is None else fence):
        found = matches.cte("matches").prefix_with("MATERIALIZED")
        ordered = select(*(found.c[n] for n in names))
        ordered = ordered.order_by(found.c.at, found.c.session_id, found.c.t, found.c.id)
    else:
        ordered = select(*(DOCS.c[n] for n in names)).where(and_(*conditions))
        ordered = ordered.order_by(DOCS.c.at, DOCS.c.session_id, DOCS.c.t, DOCS.c.id)
    return ordered.limit(query.limit)


#: The longest time range a search on PostgreSQL leaves to the planner: see :func:`fenced`.
UNFENCED_SPAN = dt.timedelta(days=31)


def fenced(query: Query, now: dt.datetime | None = None) -> bool:
    """Whether, on PostgreSQL, a search finds all its matches first, in a
    ``MATERIALIZED`` CTE the planner cannot see through, then orders them: unless
    ``query.since`` bounds it to at most :data:`UNFENCED_SPAN` before ``query.until``
    (or ``now``).

    Left alone, the planner may walk the ``at`` index oldest first, testing line after
    line until it has ``query.limit`` matches: the fastest plan for a common word, and
    for a word it wrongly takes for common a walk through every line in range. Without
    a range that is the whole index (seconds over a year), so the fence makes it find
    the matches through the trigram index. Within a short range the fence saves
    nothing: to find *all* the matches it walks the range's ``at`` index itself, or
    reads every match of the word in the whole index through the trigram index, which
    costs what the walk costs at worst (docs/decisions.md; docs/performance.md,
    "Searching within a time range: when to fence")."""
    if query.since is None:
        return True
    until = query.until if query.until is not None else (now or dt.datetime.now(dt.UTC))
    return until - query.since > UNFENCED_SPAN


#: Opens a connection to a database for one search (and closes it); any error of
#: reaching or reading it is the caller's own (:class:`~sshtrail.errors.SshtrailError`)
#: or SQLAlchemy's.
Opener = Callable[[], AbstractContextManager[Connection]]


@dataclass(frozen=True, slots=True)
class Found:
    """What one search found, and which database could not be read and why (the
    search index, ``"index"``; the store, ``"store"``), so the caller says so."""

    hits: list[Hit]
    unread: dict[str, Exception] = field(default_factory=dict)


def find(query: Query, index: Opener, store: Opener) -> Found:
    """What an auditor's search finds, the same in ``sshtrail search`` and the console:
    the index's documents (unless ``query.kind`` is ``transfer``) and the paths of file
    operations, kept in the store (when ``query.kind`` is None or ``transfer``), in time
    order, then session and offset; the first ``query.limit``. A database that cannot be
    read is left out and named in :attr:`Found.unread`."""
    hits: list[Hit] = []
    unread: dict[str, Exception] = {}
    if query.kind != "transfer":
        try:
            with index() as conn:
                hits += search(conn, query)
        except (NotSetUp, DatabaseError, OperationalError, ProgrammingError) as exc:
            unread["index"] = exc
    if query.kind in (None, "transfer"):
        try:
            with store() as conn:
                hits += transfer_hits(conn, query)
        except (NotSetUp, DatabaseError, OperationalError, ProgrammingError) as exc:
            unread["store"] = exc
    hits.sort(key=lambda hit: (hit.at or _EPOCH, str(hit.session_id), hit.t))
    return Found(hits[: query.limit], unread)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def transfer_hits(conn: Connection, query: Query) -> list[Hit]:
    """File operations whose path holds ``query.text``, of the sessions ``query``
    filters, as hits: every operation, looking around (stat, realpath, a listing) too,
    which ``sshtrail transfers`` leaves out unless ``--all`` -- a path searched for is
    one the auditor wants every trace of."""
    wanted = TransferFilter(
        operator=query.operator,
        target=query.target,
        since=query.since,
        until=query.until,
        containing=query.text,
        session_id=query.session_id,
        everything=True,
        limit=query.limit,
        masked_input=query.masked_input,
        exit_status=query.exit_status,
        scope=query.scope,
    )
    return [
        Hit(
            row["session_id"],
            "transfer",
            row["t"],
            describe.when_answered(row),
            row["operator"],
            row["target"],
            f"{row['op']} {describe.transfer_paths(row)}",
        )
        for row in list_transfers(conn, wanted)
    ]


def _contains(conn: Connection, needle: str) -> ColumnElement[bool]:
    if conn.dialect.name == "postgresql":
        if "\x00" in needle:  # PostgreSQL text holds no NUL: no document has one
            return false()
        return DOCS.c.text.ilike(f"%{escape_like(needle)}%", escape="\\")
    if len(needle) >= 3:  # FTS5 trigram: every 3-character window must occur, in order
        phrase = '"' + needle.replace('"', '""') + '"'
        matching = text("SELECT rowid FROM search_fts WHERE search_fts MATCH :phrase")
        return DOCS.c.id.in_(matching.bindparams(phrase=phrase).columns(rowid=Integer))
    return DOCS.c.text.ilike(f"%{escape_like(needle)}%", escape="\\")


def commands(conn: Connection, session_id: uuid.UUID) -> list[Hit]:
    """Every command of one session, in the order they were run."""
    query = select(*(DOCS.c[n] for n in _HIT_COLUMNS)).where(
        DOCS.c.session_id == session_id, DOCS.c.kind == "command"
    )
    return [Hit(*row) for row in conn.execute(query.order_by(DOCS.c.t, DOCS.c.ordinal))]
