"""Access-log rows read as stored, whatever a database writer put in them.

On SQLite a column's type refuses nothing: ``n`` may hold text, ``at`` a
string that is no time, ``session_id`` no UUID. SQLAlchemy converts a value
as it fetches it, and one it could not convert raised out of the whole
listing or check. Here each value is fetched untouched and converted on its
own, as SQLAlchemy would, then checked for the type the writers put there: a
row with a value that cannot be read is kept, saying what is wrong
(:attr:`Row.unreadable`), so ``access-log`` lists it escaped and ``--verify``
reports it and goes on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Select, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.types import NullType

from sshtrail.tables import ACCESS_LOG

#: Every column, and the Python types a value of it may have once read.
KINDS: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "at": (dt.datetime,),
    "auditor": (str,),
    "action": (str,),
    "address": (str,),
    "session_id": (uuid.UUID, type(None)),
    "detail": (str,),
    "chain": (str, type(None)),
    "n": (int, type(None)),
    "prev": (bytes, type(None)),
    "digest": (bytes, type(None)),
}


@dataclass(frozen=True, slots=True)
class Row:
    """One row: its values (as stored where one could not be read) and what is wrong."""

    values: dict[str, Any]
    #: Empty when every value reads; else each column that does not, and why.
    unreadable: str = ""

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def raw_select() -> Select[Any]:
    """Every column, fetched without conversion; add ``where``, ``order_by``, ``limit``."""
    columns: list[Any] = [type_coerce(ACCESS_LOG.c[name], NullType()).label(name) for name in KINDS]
    return select(*columns)


def read(conn: Connection, query: Select[Any]) -> Iterator[Row]:
    """The rows of ``query`` (made from :func:`raw_select`), each converted on its own."""
    dialect = conn.dialect
    processors = {
        name: ACCESS_LOG.c[name].type.dialect_impl(dialect).result_processor(dialect, None)
        for name in KINDS
    }
    for raw in conn.execute(query).mappings():
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, kinds in KINDS.items():
            value, convert = raw[name], processors[name]
            try:
                converted = convert(value) if convert is not None and value is not None else value
            except (ValueError, TypeError, AttributeError, OverflowError) as exc:
                problems.append(f"{name} {_shown(value)}: {exc}")
                values[name] = value
                continue
            if not isinstance(converted, kinds) or isinstance(converted, bool):
                problems.append(f"{name} {_shown(value)} is not {_kind(kinds)}")
            values[name] = converted
        yield Row(values, "; ".join(problems))


def unchained_digest(rows: Iterable[Row]) -> bytes:
    """SHA-256 over the rows (in id order) exactly as read, readable or not."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(msgspec.msgpack.encode([repr(row[name]) for name in KINDS]))
    return digest.digest()


def _kind(kinds: tuple[type, ...]) -> str:
    names = {int: "a whole number", dt.datetime: "a time", str: "text", bytes: "bytes"}
    return " or ".join(names.get(k, "empty" if k is type(None) else k.__name__) for k in kinds)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
