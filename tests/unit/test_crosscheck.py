"""``verify --cross-check`` over values a database writer made unreadable (issue 32 #5,
B5): SQLite's columns take anything; each value is checked, an unreadable one makes its
session ``tampered`` and the other sessions are still compared."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, RowMapping, text

from sshtrail import migrate
from sshtrail.cli.crosscheck import same_database
from sshtrail.crosscheck import Refused, compare
from sshtrail.db import make_engine
from sshtrail.tables import CHUNKS, SESSIONS
from sshtrail.wire import decode_chunk
from tests.support.recordings import recording


class NoLetters:
    def refused(self, sessions: Collection[uuid.UUID]) -> Mapping[uuid.UUID, Refused]:
        return {}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _stored(store: Engine) -> list[dict[str, Any]]:
    """Two closed sessions of three chunks in the store; what the index read of each."""
    read = []
    now = dt.datetime.now(dt.UTC)
    with store.begin() as conn:
        for _ in range(2):
            sid, messages = recording(chunks=3)
            last = decode_chunk(messages[-1]).digest
            conn.execute(
                SESSIONS.insert().values(
                    id=sid,
                    status="closed",
                    end_reason="exit",
                    bytes_in=0,
                    bytes_out=0,
                    chunk_count=3,
                    last_seq=2,
                    gaps=[],
                    final_digest=last,
                    masked_bytes=0,
                    masked_lines=0,
                    masked_run=0,
                )
            )
            conn.execute(
                CHUNKS.insert(),
                [
                    {
                        "session_id": sid,
                        "seq": seq,
                        "t_first": 0,
                        "t_last": 0,
                        "partition": 0,
                        "offset": seq,
                        "data": data,
                        "received_at": now,
                    }
                    for seq, data in enumerate(messages)
                ],
            )
            read.append(
                {
                    "session_id": sid,
                    "next_seq": 3,
                    "ended": True,
                    "last_digest": last.hex(),
                    "quarantine_reason": None,
                }
            )
    return read


def _found(store: Engine, read: list[dict[str, Any]]) -> dict[uuid.UUID, tuple[str, str]]:
    with store.connect() as conn:
        found = compare(conn, cast(list[RowMapping], read), NoLetters())
    return {d.session_id: (d.finding, d.detail) for d in found}


def test_untouched_they_agree(store: Engine) -> None:
    assert _found(store, _stored(store)) == {}


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("final_digest", "zz", "the store's row is unreadable: final_digest 'zz' is not a digest"),
        ("last_seq", "abc", "the store's row is unreadable: last_seq 'abc' is not a seq"),
    ],
)
def test_an_unreadable_store_value_is_tampered(
    store: Engine, column: str, value: object, said: str
) -> None:
    first, _second = read = _stored(store)
    with store.begin() as conn:
        conn.execute(
            text(f"UPDATE sessions SET {column} = :value WHERE id = :id"),
            {"value": value, "id": first["session_id"].hex},
        )
    found = _found(store, read)
    assert found == {
        first["session_id"]: (
            "tampered",
            f"the index read chunks 0 to 2 and the session's end; {said}",
        )
    }


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("next_seq", "x", "next_seq 'x' is not a chunk count"),
        ("next_seq", -5, "next_seq -5 is not a chunk count"),
        ("last_digest", b"\x00\xff", "last_digest b'\\x00\\xff' is not a digest"),
    ],
)
def test_an_unreadable_index_value_is_tampered(
    store: Engine, column: str, value: object, said: str
) -> None:
    first, _second = read = _stored(store)
    first[column] = value
    found = _found(store, read)
    assert found == {
        first["session_id"]: ("tampered", f"the index's record of it is unreadable: {said}")
    }


def test_a_huge_seq_the_index_read_is_a_missing_chunk(store: Engine) -> None:
    first, _second = read = _stored(store)
    first["next_seq"] = 2**63 - 1
    found = _found(store, read)
    assert found[first["session_id"]][0] == "tampered"
    assert "the store has no chunk 9223372036854775806" in found[first["session_id"]][1]


@pytest.mark.parametrize(
    ("store_url", "search_url", "same"),
    [
        ("postgresql+psycopg://a:x@db:5432/audit", "postgresql+psycopg://b:y@db/audit", True),
        ("postgresql+psycopg://a:x@db/audit", "postgresql+psycopg://b:y@db/audit_search", False),
        ("sqlite:////srv/store.db", "sqlite:////srv/../srv/store.db", True),
        ("sqlite:////srv/store.db", "sqlite:////srv/search.db", False),
    ],
)
def test_one_database_for_both_is_told(store_url: str, search_url: str, same: bool) -> None:
    """C2: a store and index in one database are one witness; the command warns."""
    assert same_database(store_url, search_url) is same
