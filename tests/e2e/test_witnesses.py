"""Issue 32, #5 (a-c): the store and the index are two witnesses of one topic, and a
database writer's edits to one show against the other -- sessions recorded through the
real gateway, stored and indexed by the real groups on Kafka, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import OperationalError

from consumer.store import CHUNKS, SESSIONS
from sshtrail import migrate, search
from sshtrail.db import make_engine
from tests.support import postgres
from tests.support.cli import sshtrail
from tests.support.consumers import create_topics, start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.recorded import store_and_index
from tests.support.recordings import SIGNER, keyed, produce, recording
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.e2e

#: Two exec sessions, and a shell with two typed commands (its chunks: several).
EXECS = ("echo first-witness; sleep 0.3; echo done", "echo second-witness")
TYPED = ("echo typed-one-$((1+1))", "echo typed-two-$((2+2))")


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, sshd: SshdTarget
) -> Iterator[GatewayProcess]:
    """The three sessions, recorded once on the topic for both engines."""
    process = GatewayProcess(
        tmp_path_factory.mktemp("witness-gw"), broker.bootstrap_servers, sshd, dead_letters=True
    )
    process.start()
    for command in EXECS:
        subprocess.run(
            process.ssh("alice:t1", command), capture_output=True, timeout=30, check=True
        )
    argv = process.ssh("alice:t1", tty=True)
    child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
    for line, shown in zip(TYPED, ("typed-one-2", "typed-two-4"), strict=True):
        child.sendline(line)
        child.expect(shown)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    yield process
    process.stop()


@dataclass(frozen=True)
class Witnesses:
    config: Path
    store: Engine
    index: Engine
    first: uuid.UUID  # the exec sessions
    second: uuid.UUID
    shell: uuid.UUID

    def run(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return sshtrail(self.config, *argv, check=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def witnesses(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    broker: Broker,
    gateway: GatewayProcess,
) -> Iterator[Witnesses]:
    """The sessions stored and indexed by the real groups into a fresh store and index."""
    root = tmp_path_factory.mktemp(f"witness-{request.param}")
    if request.param == "sqlite":
        store_url, search_url = f"sqlite:///{root / 'store.db'}", f"sqlite:///{root / 's.db'}"
    else:
        try:
            store_url = search_url = postgres.create_database()
        except psycopg.OperationalError as exc:
            pytest.skip(f"PostgreSQL is not available: {exc}")
    groups = {
        "store_group": f"w-{uuid.uuid4().hex[:8]}",
        "index_group": f"w-{uuid.uuid4().hex[:8]}",
    }
    config = write_config(
        root / "sshtrail.toml",
        broker.bootstrap_servers,
        gateway.topic,
        store_url,
        search_url,
        **groups,
    )
    key = gateway.workdir / "state" / "gateway" / "recording_ed25519_key"
    config.write_text(config.read_text() + f'[gateway]\nsigning_key = "{key}"\n')
    migrate.upgrade(store_url)
    store_and_index(config, store_url, search_url, sessions=3)
    store, index = make_engine(store_url), make_engine(search_url)
    with store.connect() as conn:
        ids = dict(conn.execute(select(SESSIONS.c.command, SESSIONS.c.id)).all())
        shell = conn.execute(
            select(SESSIONS.c.id).where(SESSIONS.c.request == "shell")
        ).scalar_one()
    yield Witnesses(config, store, index, ids[EXECS[0]], ids[EXECS[1]], shell)
    store.dispose()
    index.dispose()
    if request.param == "postgresql":
        postgres.drop_database(store_url)


def test_untouched_the_store_and_the_index_agree(witnesses: Witnesses) -> None:
    checked = witnesses.run("verify", "--cross-check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"3 sessions in the search index, 3 as the store has them, 0 not" in checked.stderr
    shown = json.loads(witnesses.run("show", str(witnesses.shell), "--json").stdout)
    assert shown["index"] == {"status": "agrees", "detail": ""}


def test_a_cut_tail_rewritten_to_active_is_tampered_against_the_index(
    witnesses: Witnesses,
) -> None:
    sid = witnesses.first
    with witnesses.store.begin() as conn:
        last = conn.execute(select(SESSIONS.c.last_seq).where(SESSIONS.c.id == sid)).scalar_one()
        assert last >= 1
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == sid, CHUNKS.c.seq >= 1))
        conn.execute(
            update(SESSIONS)
            .where(SESSIONS.c.id == sid)
            .values(
                status="active",
                ended_at=None,
                end_reason=None,
                exit_status=None,
                final_digest=None,
                signature=None,
                signing_key=None,
                verified=None,
                chunk_count=1,
                last_seq=0,
            )
        )
    alone = witnesses.run("verify", str(sid))
    assert b"unsigned" in alone.stdout  # the store alone reads an open session

    checked = witnesses.run("verify", "--cross-check")
    assert checked.returncode == 1
    [line] = [row for row in checked.stdout.decode().splitlines() if str(sid) in row]
    assert " tampered " in line
    assert f"the index read chunks 0 to {last} and the session's end" in line
    shown = json.loads(witnesses.run("show", str(sid), "--json").stdout)
    assert shown["index"]["status"] == "differs"


def test_a_whole_session_deleted_is_reported(witnesses: Witnesses) -> None:
    sid = witnesses.second
    with witnesses.store.begin() as conn:
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == sid))
        conn.execute(delete(SESSIONS).where(SESSIONS.c.id == sid))
    assert str(sid).encode() not in witnesses.run("sessions").stdout

    checked = witnesses.run("verify", "--cross-check", "--json")
    assert checked.returncode == 1
    found = {row["session"]: row for row in json.loads(checked.stdout)}
    assert found[str(sid)]["status"] == "missing"
    assert "the store has neither its row nor any chunk" in found[str(sid)]["detail"]


def test_show_lists_a_command_deleted_from_the_index(witnesses: Witnesses) -> None:
    sid = witnesses.shell
    with witnesses.index.begin() as conn:
        deleted = conn.execute(
            delete(search.DOCS)
            .where(
                search.DOCS.c.session_id == sid,
                search.DOCS.c.kind == "command",
                search.DOCS.c.text.like("%typed-one%"),
            )
            .returning(search.DOCS.c.text)
        ).all()
    assert len(deleted) == 1

    shown = json.loads(witnesses.run("show", str(sid), "--json").stdout)
    commands = [c["command"] for c in shown["commands"]]
    assert any("typed-one" in command for command in commands)
    assert any("typed-two" in command for command in commands)
    assert shown["index"] == {
        "status": "differs",
        "detail": "1 command of the recording not in the index",
    }
    text = witnesses.run("show", str(sid)).stdout.decode()
    assert "index  differs: 1 command of the recording not in the index" in text
    assert "typed-one" in text


def _refuse_from(store: Engine, session_id: uuid.UUID, seq: int) -> None:
    """Make the store's database refuse the session's row from chunk ``seq`` on, as it
    refuses a value it cannot hold: those chunks are quarantined, the earlier ones
    stored."""
    raised = "RAISE(ABORT, 'refused for the test')"
    growing = f"NEW.last_seq >= {seq} AND COALESCE(OLD.last_seq, -1) < {seq}"
    with store.begin() as conn:
        if store.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER refuse BEFORE UPDATE ON sessions WHEN {growing} "
                    f"AND NEW.id = '{session_id.hex}' BEGIN SELECT {raised}; END"
                )
            )
            return
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                f"IF {growing} AND NEW.id = '{session_id}' THEN "
                "RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE ON sessions "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )


def test_a_quarantine_set_by_a_database_writer_hides_no_cut_tail_or_deleted_session(
    tmp_path: Path, broker: Broker, topic_name: str, database_url: str
) -> None:
    """Issue 32 #5, B2: a store quarantine is held to the dead letters. One the store
    really made (its database refused chunks 2 to 4, on the dead-letter topic; 0 and 1
    stored) agrees with the index; one a database writer wrote over a cut tail, over a
    session whose chunks it deleted, or over a real one it cut further, does not."""
    create_topics(broker.bootstrap_servers, topic_name, topic_name + ".dlq")
    real, cut, emptied = (recording(chunks=5, text=True) for _ in range(3))
    for sid, messages in (real, cut, emptied):
        produce(broker.bootstrap_servers, topic_name, keyed(sid, messages))
    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    config = write_config(
        tmp_path / "c.toml", broker.bootstrap_servers, topic_name, database_url, search_url
    )
    signer = SIGNER.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    config.write_text(config.read_text() + f'[control]\ngateway_keys = ["{signer.decode()}"]\n')
    migrate.upgrade(database_url)
    store, index = make_engine(database_url), make_engine(search_url)
    _refuse_from(store, real[0], 2)
    members = [start_member(config, "store"), start_member(config, "index")]

    def stored() -> bool:
        with store.connect() as conn:
            statuses = dict(conn.execute(select(SESSIONS.c.id, SESSIONS.c.status)).all())
            chunks = conn.execute(select(func.count()).select_from(CHUNKS)).scalar_one()
        try:
            with index.connect() as conn:
                ended = conn.execute(
                    select(func.count()).where(search.SESSIONS.c.ended)
                ).scalar_one()
        except OperationalError:
            ended = 0  # the index member has not made its tables yet
        wanted = {real[0]: "quarantined", cut[0]: "closed", emptied[0]: "closed"}
        return statuses == wanted and chunks == 12 and ended == 3

    try:
        wait_for(stored, what="three sessions stored (one quarantined) and indexed")
    finally:
        for member in members:
            member.stop()
    checked = sshtrail(config, "verify", "--cross-check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"3 sessions in the search index, 3 as the store has them, 0 not" in checked.stderr

    quarantine = {"status": "quarantined", "quarantine_reason": "chunk 1: value too long"}
    with store.begin() as conn:
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == cut[0], CHUNKS.c.seq >= 1))
        conn.execute(
            update(SESSIONS)
            .where(SESSIONS.c.id == cut[0])
            .values(
                **quarantine,
                end_reason=None,
                ended_at=None,
                final_digest=None,
                signature=None,
                signing_key=None,
                verified=None,
                chunk_count=1,
                last_seq=0,
            )
        )
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == emptied[0]))
        conn.execute(
            update(SESSIONS).where(SESSIONS.c.id == emptied[0]).values(**quarantine, chunk_count=0)
        )
        conn.execute(delete(CHUNKS).where(CHUNKS.c.session_id == real[0], CHUNKS.c.seq == 1))
    store.dispose()
    index.dispose()
    checked = sshtrail(config, "verify", "--cross-check", "--json", check=False)
    assert checked.returncode == 1, checked.stderr
    found = {row["session"]: (row["status"], row["detail"]) for row in json.loads(checked.stdout)}
    quarantined = "the index read chunks 0 to 4 and the session's end, and the store quarantined it"
    none = "and the store group did not dead-letter"
    assert found == {
        str(cut[0]): ("tampered", f"{quarantined}; the store lacks chunks 1-4, {none} any of them"),
        str(emptied[0]): (
            "tampered",
            f"{quarantined}; the store lacks chunks 0-4, {none} any of them",
        ),
        str(real[0]): ("tampered", f"{quarantined}; the store lacks chunk 1, {none} it"),
    }
