"""The ``sshtrail index`` group on the real broker: kill -9, independence from the store."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from sshtrail import search
from sshtrail.db import make_engine
from tests.support.consumers import chunk_count, start_member, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, typed_session

pytestmark = pytest.mark.integration

WORK = [
    (f"echo step {n}; grep -c err /var/log/app{n}.log", f"{n * 7}\nstep {n} done")
    for n in range(30)
]


def documents(engine: Engine) -> set[tuple[object, ...]]:
    d = search.DOCS.c
    with engine.connect() as conn:
        return {
            tuple(r)
            for r in conn.execute(select(d.session_id, d.kind, d.ordinal, d.seq, d.t, d.text))
        }


def ended(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            query = select(func.count()).where(search.SESSIONS.c.ended)
            return int(conn.execute(query).scalar_one())
    except Exception:
        return 0


def index_config(
    tmp_path: Path, name: str, servers: str, topic: str, url: str, **options: object
) -> Path:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    return write_config(tmp_path / f"{name}.toml", servers, topic, store_url, url, **options)


def test_kill_9_mid_session_then_restart_gives_the_same_index(
    broker: Broker, store_topic: str, database_url: str, tmp_path: Path
) -> None:
    servers = broker.bootstrap_servers
    sessions = [typed_session(WORK, events_per_chunk=4) for _ in range(40)]
    total = produce(servers, store_topic, [m for s in sessions for m in keyed(*s)])
    # The member that is killed writes to database_url; an uninterrupted one, in a
    # group of its own, to a SQLite file; both must end with the same documents.
    killed = index_config(tmp_path, "killed", servers, store_topic, database_url, batch_size=150)
    calm_url = f"sqlite:///{tmp_path / 'calm.db'}"
    calm = index_config(
        tmp_path, "calm", servers, store_topic, calm_url, index_group=f"{store_topic}-calm"
    )
    engine = make_engine(database_url)
    member = start_member(killed, "index", "--instance-id", "index-1")
    wait_for(lambda: ended(engine) > 0, what="the first sessions indexed")
    member.process.kill()
    member.process.wait(10)
    assert ended(engine) < len(sessions), "the kill came too late to test anything"
    member = start_member(killed, "index", "--instance-id", "index-1")
    uninterrupted = start_member(calm, "index")
    calm_engine = make_engine(calm_url)
    try:
        wait_for(lambda: ended(engine) == len(sessions), timeout=120, what="all indexed")
        wait_for(lambda: ended(calm_engine) == len(sessions), timeout=120, what="baseline")
    finally:
        for running in (member, uninterrupted):
            status, _, err = running.stop(signal.SIGTERM)
            assert status == 0, err
    result = documents(engine)
    assert result == documents(calm_engine)
    assert len(result) == len(sessions) * (1 + 3 * len(WORK))  # meta; a command, 2 lines each
    assert total > len(sessions) * 20
    engine.dispose()
    calm_engine.dispose()


def test_each_group_keeps_working_while_the_other_is_stopped(
    broker: Broker, store_topic: str, tmp_path: Path
) -> None:
    from sshtrail import migrate

    servers = broker.bootstrap_servers
    store_url, index_url = f"sqlite:///{tmp_path / 'store.db'}", f"sqlite:///{tmp_path / 's.db'}"
    migrate.upgrade(store_url)
    store_engine, index_engine = make_engine(store_url), make_engine(index_url)
    config = index_config(tmp_path, "both", servers, store_topic, index_url)
    index = start_member(config, "index")
    store = start_member(config, "store")
    try:
        first = produce(servers, store_topic, keyed(*typed_session(WORK[:3])))
        wait_for(lambda: chunk_count(store_engine) == first and ended(index_engine) == 1)
        assert store.stop(signal.SIGTERM)[0] == 0  # store down: the index goes on
        second = produce(servers, store_topic, keyed(*typed_session(WORK[3:6])))
        wait_for(lambda: ended(index_engine) == 2, what="indexing without the store")
        assert chunk_count(store_engine) == first
        store = start_member(config, "store")
        assert index.stop(signal.SIGTERM)[0] == 0  # index down: the store goes on
        produce(servers, store_topic, keyed(*typed_session(WORK[6:9])))
        wait_for(lambda: chunk_count(store_engine) > first + second, what="storing alone")
        assert ended(index_engine) == 2
        index = start_member(config, "index")  # and catches up when it is back
        wait_for(lambda: ended(index_engine) == 3, what="the index to catch up")
    finally:
        for member in (index, store):
            if member.process.poll() is None:
                assert member.stop(signal.SIGTERM)[0] == 0
    store_engine.dispose()
    index_engine.dispose()
