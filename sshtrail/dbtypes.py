"""Column types of sshtrail's tables, and the naming convention of their constraints.

Apart from the models (``sshtrail/models.py``) so that what reads the store
without the ORM -- the auditor's commands, through ``sshtrail/tables.py`` --
needs only SQLAlchemy Core.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Dialect, String, Text, TypeDecorator

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
