"""Writes ``sshtrail/tables.py``: the store's tables as SQLAlchemy Core, from the models.

The models (``sshtrail/models.py``) are the one declaration of the schema;
they need the ORM, whose import alone costs an auditor's command ~70 ms
(docs/performance.md, "CLI start-up"). What reads the store -- queries,
verification, the auditor's commands -- needs only the tables, so it uses
this generated copy. A unit test fails when it differs from what the models
say; regenerate with::

    python -m sshtrail.tablegen sshtrail/tables.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import Column, Table

from sshtrail.dbtypes import SessionText, UTCDateTime
from sshtrail.models import Base

HEADER = '''"""The store's tables as SQLAlchemy Core -- generated from sshtrail/models.py by
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
'''


def render() -> str:
    """The source of ``sshtrail/tables.py``."""
    parts = [HEADER]
    for table in Base.metadata.sorted_tables:
        parts.append(_table(table))
    return "\n".join(parts)


def _table(table: Table) -> str:
    lines = [f"\n{table.name.upper()} = Table(", f'    "{table.name}",', "    METADATA,"]
    lines += [f"    {_column(column)}," for column in table.columns]
    lines.append(")\n")
    return "\n".join(lines)


def _column(column: Column[object]) -> str:
    arguments = [f'"{column.name}"', _type(column)]
    arguments += [f'ForeignKey("{key.target_fullname}")' for key in column.foreign_keys]
    if column.primary_key:
        arguments.append("primary_key=True")
    if not column.nullable and not column.primary_key:
        arguments.append("nullable=False")
    return f"Column({', '.join(arguments)})"


def _type(column: Column[object]) -> str:
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return "UTCDateTime()"
    if isinstance(kind, SessionText):
        return f"SessionText({kind.length})" if kind.length else "SessionText()"
    return repr(kind)  # Core types print as they are built: String(length=16), Uuid()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sshtrail.tablegen PATH", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
