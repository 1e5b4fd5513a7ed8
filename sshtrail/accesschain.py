"""The access log as hash chains whose heads live outside the database.

Someone who can write the store's database could delete, change or add
``access_log`` rows without a trace. So each row is a link of a chain: it
names its chain (``chain``), its place in it (``n``, from 0), the digest of
the row before (``prev``; 32 zero bytes for row 0) and its own ``digest``,
SHA-256 over ``prev`` and its fields *as stored* (read back after the insert,
so what the database does to a value -- a cut, an escape -- is what is
hashed). After each row, the writer publishes the chain's **head** (chain,
n, digest), signed with the control key, on ``web.access_log_topic``, keyed
by the chain (compacted: the last head of every chain stays for good).
A database writer cannot sign, so :func:`check` finds, against the heads:

* a row changed without its digest (*altered*), or a chain rewritten from a
  row on, digests and all (its rows no longer end in the published head:
  *altered*);
* rows missing inside a chain (*deleted*), or at its end, up to the head
  (*cut tail*), or a whole chain gone while its head is published;
* rows of a chain no head was published for, or after its last head
  (*inserted*; a console that crashed before sending its last head looks the
  same, and is said so);
* rows outside any chain that were not there when the chains began
  (*inserted*), or rows of those that were there gone or changed (*deleted*,
  *altered*): which rows predate the chains cannot be told from the rows
  themselves (a writer chooses their ids), so every head carries
  :class:`Before` -- how many rows were in no chain when its chain began, their
  lowest and highest id and a digest over them -- and on a fresh installation
  that is none.

A row a database writer made unreadable (text in ``n``, no time in ``at``:
SQLite refuses neither) is *altered* and the rest is still checked
(:mod:`sshtrail.accessrows`).

**One chain per writing process**, named at random when the process starts
(:class:`AccessChain`): several console processes, and every ``terminate``
or ``lock`` from a shell, write side by side without taking a lock in the
database, on SQLite and PostgreSQL alike, and each chain stays one line.
Within a process a lock keeps the rows of the chain in order
(docs/decisions.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Engine, or_, select, update
from sqlalchemy.engine import Connection

from sshtrail.accessrows import Row, raw_select, read, unchained_digest
from sshtrail.accesstrims import Trim
from sshtrail.errors import SshtrailError
from sshtrail.tables import ACCESS_LOG

log = logging.getLogger(__name__)

#: What a head's signature covers before its body: no other signed thing of
#: sshtrail (control requests, session ends) starts so.
HEAD_CONTEXT = b"sshtrail access-log head v1\x00"
ZERO = bytes(32)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: The largest head taken from the topic (one is about 250 bytes).
MAX_HEAD = 4096


class Before(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The rows in no chain (written before migration 0006) when a chain began."""

    rows: int
    first_id: int | None
    last_id: int | None
    #: :func:`~sshtrail.accessrows.unchained_digest` over them, in id order.
    digest: bytes


class Head(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The last row of a chain when it was published."""

    chain: str
    n: int
    digest: bytes
    #: Nanoseconds since the Unix epoch, when it was signed.
    at: int
    #: None in heads of consoles older than this field: the rows before the chains
    #: are then told by their ids, as a database writer may choose them.
    before: Before | None = None


class _Signed(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: bytes
    key: bytes
    sig: bytes


class HeadError(ValueError):
    """A message on the heads topic that is not a head signed by a trusted key."""


def encode_head(head: Head, signer: Ed25519PrivateKey) -> bytes:
    body = msgspec.json.encode(head)
    key = signer.public_key().public_bytes_raw()
    return msgspec.json.encode(_Signed(body, key, signer.sign(HEAD_CONTEXT + body)))


def decode_head(data: bytes | None, trusted: Collection[bytes]) -> Head:
    """The head in ``data``, if a ``trusted`` key signed it; :class:`HeadError` if not."""
    if not data or len(data) > MAX_HEAD:
        raise HeadError("empty, or too large for a head")
    try:
        signed = msgspec.json.decode(data, type=_Signed)
    except msgspec.DecodeError as exc:
        raise HeadError(f"not a signed head: {exc}") from None
    if signed.key not in trusted:
        raise HeadError("signed by a key that is not trusted (control.trusted_keys)")
    try:
        Ed25519PublicKey.from_public_bytes(signed.key).verify(
            signed.sig, HEAD_CONTEXT + signed.body
        )
    except (InvalidSignature, ValueError):
        raise HeadError("the signature does not match the head") from None
    try:
        return msgspec.json.decode(signed.body, type=Head)
    except msgspec.DecodeError as exc:
        raise HeadError(f"a signed message that is not a head: {exc}") from None


def row_digest(row: Mapping[Any, Any]) -> bytes:
    """SHA-256 over the row's ``prev`` and its fields, as read from the store."""
    at: dt.datetime = row["at"]
    session = row["session_id"].hex if row["session_id"] is not None else ""
    fields = [
        row["chain"],
        row["n"],
        (at - _EPOCH) // dt.timedelta(microseconds=1),
        row["auditor"],
        row["action"],
        row["address"],
        session,
        row["detail"],
    ]
    return hashlib.sha256((row["prev"] or b"") + msgspec.msgpack.encode(fields)).digest()


class HeadPublisher(Protocol):
    """Where heads go: the Kafka topic (:mod:`sshtrail.kafka.adapters`), or a test's list."""

    def publish(self, key: bytes, value: bytes) -> None:
        """Send, without waiting; a later head of the same chain supersedes it."""
        ...

    def close(self) -> None:
        """Send what is waiting (a few seconds at most)."""
        ...


_COLUMNS = ("at", "auditor", "action", "address", "session_id", "detail", "chain", "n", "prev")


class AccessChain:
    """The chain of this process: appends rows, publishes each new head."""

    def __init__(self, engine: Engine, publisher: HeadPublisher, signer: Ed25519PrivateKey) -> None:
        self.name = uuid.uuid4().hex
        self._engine = engine
        self._publisher = publisher
        self._signer = signer
        self._next = 0
        self._prev = ZERO
        self._before: Before | None = None
        self._lock = threading.Lock()

    def append(self, values: Mapping[str, Any]) -> None:
        """Write one row (``at``, ``auditor``, ``action``, ``address``, ``session_id``,
        ``detail``) as the chain's next link, then publish the new head. A row the
        database does not take leaves the chain as it was."""
        with self._lock:
            with self._engine.begin() as conn:
                if self._before is None:
                    self._before = unchained(conn)
                inserted = conn.execute(
                    ACCESS_LOG.insert().values(
                        **values, chain=self.name, n=self._next, prev=self._prev
                    )
                ).inserted_primary_key
                row_id = inserted[0] if inserted is not None else None
                stored = (
                    conn.execute(
                        select(*(ACCESS_LOG.c[name] for name in _COLUMNS)).where(
                            ACCESS_LOG.c.id == row_id
                        )
                    )
                    .mappings()
                    .one()
                )
                digest = row_digest(stored)
                conn.execute(
                    update(ACCESS_LOG).where(ACCESS_LOG.c.id == row_id).values(digest=digest)
                )
            head = Head(self.name, self._next, digest, time.time_ns(), self._before)
            self._next += 1
            self._prev = digest
            try:
                self._publisher.publish(self.name.encode(), encode_head(head, self._signer))
            except SshtrailError as exc:  # the row is written; the next head covers it
                log.error("cannot publish the access log's head: %s", exc)

    def close(self) -> None:
        self._publisher.close()


def _unchained_rows(conn: Connection) -> Iterable[Row]:
    query = raw_select().where(or_(ACCESS_LOG.c.chain.is_(None), ACCESS_LOG.c.n.is_(None)))
    return read(conn, query.order_by(ACCESS_LOG.c.id))


def unchained(conn: Connection) -> Before:
    """The rows in no chain, as they are now."""
    return _pinned(list(_unchained_rows(conn)))


def _pinned(rows: list[Row]) -> Before:
    ids = [row["id"] for row in rows]
    return Before(len(rows), min(ids, default=None), max(ids, default=None), unchained_digest(rows))


Finding = Literal["altered", "deleted", "cut tail", "inserted", "unpublished"]


@dataclass(frozen=True, slots=True)
class Problem:
    finding: Finding
    chain: str | None
    #: Places in the chain (n), or row ids for rows outside any chain.
    rows: tuple[int, int]
    detail: str


@dataclass(slots=True)
class Report:
    rows: int = 0
    chains: int = 0
    heads: int = 0
    #: Rows written before the chains began (migration 0006).
    unchained: int = 0
    #: Whether they were held to what the heads say they were (:class:`Before`).
    pinned: bool = False
    #: Messages on the topic that are not heads signed by a trusted key.
    refused: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Per chain, the checkpoint it was checked from (``retention.access_log_keep``
    #: dropped its rows up to there), by chain.
    trims: list[Trim] = field(default_factory=list)


def stored_rows(conn: Connection) -> Iterable[Row]:
    """Every row of the access log, chains in order."""
    order = (ACCESS_LOG.c.chain, ACCESS_LOG.c.n, ACCESS_LOG.c.id)
    return read(conn, raw_select().order_by(*order))


def check(rows: Iterable[Row], heads: Iterable[Head], trims: Iterable[Trim] = ()) -> Report:
    """The rows (:func:`stored_rows`) against the published ``heads``, each chain from
    its latest trustworthy checkpoint in ``trims`` (:mod:`sshtrail.accesstrims`), if any."""
    report = Report()
    starts: dict[str, Trim] = {}
    for trim in trims:
        if trim.problem:
            detail = f"a checkpoint of retention.access_log_keep not to be trusted: {trim.problem}"
            report.problems.append(Problem("altered", trim.chain, (trim.first, trim.n), detail))
        elif trim.chain not in starts or trim.n > starts[trim.chain].n:
            starts[trim.chain] = trim
    report.trims = [starts[name] for name in sorted(starts)]
    published: dict[str, dict[int, bytes]] = {}
    pins: list[Before] = []
    for head in heads:
        published.setdefault(head.chain, {})[head.n] = head.digest
        report.heads += 1
        if head.before is not None:
            pins.append(head.before)
    chains: dict[str, list[Row]] = {}
    unchained: list[Row] = []
    for row in rows:
        report.rows += 1
        if row.unreadable:
            report.problems.append(
                Problem("altered", None, (row["id"], row["id"]), f"unreadable: {row.unreadable}")
            )
        if row["chain"] is None or row["n"] is None:
            unchained.append(row)  # unreadable or not, as the chains' Before counts them
        elif not row.unreadable:
            chains.setdefault(row["chain"], []).append(row)
    report.chains = len(chains)
    if pins:
        # Rows in no chain are only ever added (by consoles older than the chains):
        # the head that saw the most is the latest word on them.
        pin = max(pins, key=lambda p: (p.rows, p.last_id or 0))
        report.problems += _before(unchained, pin, report)
    else:
        report.problems += _before_by_id(unchained, chains, report)
    for name in sorted(set(chains) | set(published) | set(starts)):
        report.problems += _chain(
            name, chains.get(name, []), published.get(name, {}), starts.get(name)
        )
    return report


def _before(rows: list[Row], pin: Before, report: Report) -> list[Problem]:
    """The rows in no chain against what every chain's heads say they were."""
    found: list[Problem] = []
    low, high = pin.first_id, pin.last_id
    inside = [r for r in rows if low is not None and high is not None and low <= r["id"] <= high]
    for row in rows:
        if not (low is not None and high is not None and low <= row["id"] <= high):
            detail = "a row in no chain that was not there when the chains began"
            found.append(Problem("inserted", None, (row["id"], row["id"]), detail))
    report.unchained, report.pinned = len(inside), True
    if len(inside) == pin.rows and unchained_digest(inside) == pin.digest:
        return found
    span = (low or 0, high or 0)  # rows were there: so were their ids
    before = f"rows in no chain among ids {span[0]}-{span[1]}"
    if len(inside) > pin.rows:
        detail = f"{len(inside) - pin.rows} more {before} than when the chains began"
        found.append(Problem("inserted", None, span, detail))
    elif len(inside) < pin.rows:
        detail = f"{pin.rows - len(inside)} of the {pin.rows} {before} gone"
        found.append(Problem("deleted", None, span, detail))
    else:
        detail = f"the {before} are not those the chains began with"
        found.append(Problem("altered", None, span, detail))
    return found


def _before_by_id(rows: list[Row], chains: dict[str, list[Row]], report: Report) -> list[Problem]:
    """With no head saying which rows predate the chains (heads of older consoles): those
    with an id below every chained row's."""
    found: list[Problem] = []
    first = min((r["id"] for chain in chains.values() for r in chain), default=None)
    for row in rows:
        if first is not None and row["id"] > first:
            detail = "a row in no chain, written after the chains began"
            found.append(Problem("inserted", None, (row["id"], row["id"]), detail))
        else:
            report.unchained += 1
    return found


def _chain(
    name: str, rows: list[Row], heads: dict[int, bytes], start: Trim | None
) -> list[Problem]:
    """What is wrong with one chain's ``rows`` (by n), against its published ``heads``,
    from its checkpoint ``start`` (its rows up to ``start.n`` dropped) or from row 0."""
    found: list[Problem] = []
    last_head = max(heads, default=-1)

    def say(finding: Finding, low: int, high: int, detail: str) -> None:
        found.append(Problem(finding, name, (low, high), detail))

    expected, prev = 0, ZERO
    if start is not None:
        found += _before_checkpoint(name, rows, heads, start)
        rows = [row for row in rows if row["n"] > start.n]
        expected, prev = start.n + 1, start.digest
    for row in rows:
        n = row["n"]
        if n < expected:
            say("inserted", n, n, f"a second row {n}")
            continue
        if n > expected:
            say("deleted", expected, n - 1, "missing inside the chain")
        elif row["prev"] != prev:
            say("altered", n, n, f"does not follow row {n - 1}: a row was replaced or put in")
        digest = row_digest(row.values)
        if digest != row["digest"]:
            say("altered", n, n, "its fields are not those its digest was made of")
        elif n in heads and heads[n] != digest:
            say("altered", n, n, "not the row whose digest was published (the chain was rewritten)")
        if n > last_head:
            if not heads:
                say("inserted", n, n, "in a chain no head was ever published for")
            else:
                say("unpublished", n, n, f"after the chain's last published head (row {last_head})")
        expected, prev = n + 1, row["digest"]
    if last_head >= expected:
        gone = "every row of the chain" if not rows else "rows at the chain's end"
        say("cut tail", expected, last_head, f"{gone} deleted: its head names row {last_head}")
    return _merged(found)


def _before_checkpoint(
    name: str, rows: list[Row], heads: dict[int, bytes], start: Trim
) -> list[Problem]:
    """What is wrong up to a chain's checkpoint: rows it says were dropped, and a
    published head for its last dropped row that names another digest."""
    found = [
        Problem("inserted", name, (row["n"], row["n"]), "a row the checkpoint says was dropped")
        for row in rows
        if row["n"] <= start.n
    ]
    if heads.get(start.n, start.digest) != start.digest:
        detail = "dropped, but not the row whose digest was published (the chain was rewritten)"
        found.append(Problem("altered", name, (start.n, start.n), detail))
    return found


def _merged(problems: list[Problem]) -> list[Problem]:
    """Neighbouring rows with the same finding and detail, said once."""
    merged: list[Problem] = []
    for problem in problems:
        if merged:
            last = merged[-1]
            if (last.finding, last.detail) == (problem.finding, problem.detail) and (
                problem.rows[0] == last.rows[1] + 1
            ):
                merged[-1] = Problem(
                    last.finding, last.chain, (last.rows[0], problem.rows[1]), last.detail
                )
                continue
        merged.append(problem)
    return merged
