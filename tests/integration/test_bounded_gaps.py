"""Issue 32, #4: a seq of 10**9 or a hostile ``sessions.gaps`` is reported, promptly and
in bounded memory, by every command that reads gaps -- on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import Engine, Text, cast, literal, select, update

from consumer.messages import Received
from consumer.store import SESSIONS, StoreWriter
from sshtrail import events as ev
from sshtrail.chain import ChainWriter
from sshtrail.ids import uuid7
from sshtrail.wire import decode_chunk
from tests.support.cli import Running
from tests.support.gateway import toml_value
from tests.support.recordings import SIGNER

#: Address space for each command: expanding 10**9 seqs into a set needs tens of GiB.
MEMORY = 1 << 30

#: What a database writer puts in ``sessions.gaps``, and what ``show`` then says of it.
HOSTILE = {
    "not json": "not a list of [low, high] pairs",
    '{"a": 1}': "not a list of [low, high] pairs",
    "[[-5, 0]]": "negative or reversed",
    "[[1, 0]]": "negative or reversed",
    "[[0, 1], [1, 1]]": "overlaps",
    "[[0, 1000000000000]]": "not below the last seq stored",
}
#: Two million ranges: more than a reader takes (a store could write that many only
#: for a session of millions of chunks, so it is not called an edit).
HUGE = json.dumps([[n, n] for n in range(0, 4_000_000, 2)])


def write_session(engine: Engine, last_seq: int) -> uuid.UUID:
    """Through the real store writer: chunks 0 and 1, then one numbered ``last_seq``
    (as a producer on the topic can send), no end."""
    sid = uuid7()
    writer = ChainWriter(sid, SIGNER)
    start = ev.Start(
        0, "alice", "127.0.0.1:1", "t1", "127.0.0.1", 22, "root", "gw", "", 0, 0, time.time_ns()
    )
    messages = [writer.encode([start, ev.Exec(0, "exec", b"true")])]
    messages.append(writer.encode([ev.Output(1, b"hello\n")]))
    writer.seq = last_seq
    messages.append(writer.encode([ev.Output(2, b"far away\n")]))
    now = dt.datetime.now(dt.UTC)
    received = [Received(decode_chunk(m), 0, i, now) for i, m in enumerate(messages)]
    StoreWriter(engine, dt.timedelta(hours=1)).write(received)
    return sid


def edit_gaps(engine: Engine, sid: uuid.UUID, value: str) -> None:
    """What a database writer can do: any text on SQLite, any JSON on PostgreSQL."""
    raw = literal(value, Text)
    stored = raw if engine.dialect.name == "sqlite" else cast(raw, SESSIONS.c.gaps.type)
    with engine.begin() as conn:
        conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid).values(gaps=stored))


def run(config: Path, *argv: str, fails: bool = False) -> str:
    """The command's output; it must end (a loop over 10**9 seqs would not, within the
    wait's bound; a set of them would not fit the memory limit), with a failure exactly
    if ``fails``. How fast the commands answer is measured by bench/audit.py."""
    command = Running("--config", str(config), *argv, cwd=config.parent, memory_limit=MEMORY)
    status, out, err = command.wait(timeout=60)
    out = "".join(command.lines) + out + err
    assert "Traceback" not in err, err
    assert (status != 0) == fails, (status, out)
    return out


def test_a_huge_seq_and_hostile_gaps_are_reported_promptly(
    store_engine: Engine, database_url: str, tmp_path: Path
) -> None:
    hostile = {}
    for value, said in HOSTILE.items():
        if store_engine.dialect.name != "sqlite" and value == "not json":
            continue  # PostgreSQL refuses it: the json type checks
        sid = write_session(store_engine, 2)
        edit_gaps(store_engine, sid, value)
        hostile[sid] = said
    huge = write_session(store_engine, 2)
    edit_gaps(store_engine, huge, HUGE)
    far = write_session(store_engine, 10**9)  # the newest: first in the list
    config = tmp_path / "sshtrail.toml"
    config.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
        f"[database]\nurl = {toml_value(database_url)}\n"
    )

    out = run(config, "show", str(far))
    assert "missing chunks 2-999999999" in out, out

    out = run(config, "sessions", "--limit", "5")
    assert far.hex[:12] in out, out
    assert "tampered" in out, out

    trust = tmp_path / "gateway.pub"
    trust.write_bytes(SIGNER.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH))
    out = run(config, "verify", "--all", "--trust", str(trust), fails=True)
    assert f"{far}  gap  missing chunks 2-999999999" in out, out
    for sid in hostile:
        assert f"{sid}  tampered  the session's record of missing chunks" in out, out
    # Too long to read is not proof of an edit: the chunks are judged alone, and it says so.
    assert f"{huge}  unsigned  no end chunk" in out, out
    assert "record of missing chunks was not read (" in out, out

    for sid, said in hostile.items():
        out = run(config, "show", str(sid))
        gaps_line = next(line for line in out.splitlines() if line.strip().startswith("gaps"))
        assert said in gaps_line, out
        assert "unreadable" in gaps_line, out
        assert "tampered" in out, out
    out = run(config, "show", str(huge))
    assert "gaps  unreadable: " in out, out
    assert "characters stored, too many to read" in out, out


def test_the_store_writer_takes_spoiled_gaps_again_from_the_chunks(store_engine: Engine) -> None:
    """A database writer's edit of ``gaps`` does not stop the store group at the
    session's next chunk (it raised a JSON or unpacking error): the gaps are taken
    again from the chunks stored."""
    sid = write_session(store_engine, 5)  # chunks 0, 1 and 5
    edit_gaps(store_engine, sid, '{"a": 1}')
    writer = ChainWriter(sid, SIGNER)
    writer.seq, writer.prev = 3, b"\1" * 32
    late = writer.encode([ev.Output(3, b"late\n")])
    now = dt.datetime.now(dt.UTC)
    result = StoreWriter(store_engine, dt.timedelta(hours=1)).write(
        [Received(decode_chunk(late), 0, 10, now)]
    )
    assert result.written == 1
    with store_engine.connect() as conn:
        gaps = conn.execute(select(SESSIONS.c.gaps).where(SESSIONS.c.id == sid)).scalar_one()
    assert gaps == [[2, 2], [4, 4]]
