"""Issue 32, #5 (d): the access log is hash chains whose signed heads are on Kafka, and
``sshtrail access-log --verify`` finds rows a database writer deleted, altered or
inserted, and a cut tail -- two consoles writing at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, text, update
from starlette.testclient import TestClient

from consumer.web.app import create_app
from sshtrail import migrate
from sshtrail.accesschain import row_digest
from sshtrail.db import make_engine
from sshtrail.passwords import hash_password
from sshtrail.settings import load_settings
from sshtrail.tables import ACCESS_LOG
from tests.support.cli import sshtrail
from tests.support.consumers import create_topics, wait_for
from tests.support.gateway import toml_value
from tests.support.kafka import Broker

pytestmark = pytest.mark.integration

PASSWORD = "a-long-password"


def write_config(path: Path, servers: str, database_url: str, topic: str) -> Path:
    path.write_text(
        "\n".join(
            [
                f"state_dir = {toml_value(str(path.parent / 'state'))}",
                "[kafka]",
                f"bootstrap_servers = {toml_value(servers)}",
                "[database]",
                f"url = {toml_value(database_url)}",
                "[web]",
                f"access_log_topic = {toml_value(topic)}",
                "[[auditors]]",
                'name = "ann"',
                f"password_hash = {toml_value(hash_password(PASSWORD))}",
                'role = "admin"',
            ]
        )
        + "\n"
    )
    return path


def browse(config: Path, looks: int) -> None:
    """A console process of its own (its own chain): sign in, then look ``looks`` times."""
    with TestClient(create_app(load_settings(config)), base_url="http://127.0.0.1") as client:
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        answer = client.post(
            "/login",
            data={"name": "ann", "password": PASSWORD, "csrf": token[1], "next": "/sessions"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        for look in range(looks):
            assert client.get(f"/sessions?operator=op{look}").status_code == 200


def verify(config: Path) -> tuple[int, Any]:
    done = sshtrail(config, "access-log", "--verify", "--json", check=False)
    assert done.returncode in (0, 1), done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


def chains(engine: Engine) -> list[list[dict[str, object]]]:
    """The rows of each chain, by n, the longest chain first."""
    with engine.connect() as conn:
        found = conn.execute(select(ACCESS_LOG).order_by(ACCESS_LOG.c.n)).mappings()
        rows = [dict(row) for row in found]
    by_chain: dict[object, list[dict[str, object]]] = {}
    for row in rows:
        by_chain.setdefault(row["chain"], []).append(row)
    return sorted(by_chain.values(), key=len, reverse=True)


def test_deleted_altered_inserted_rows_and_a_cut_tail_are_found(
    store_engine: Engine, database_url: str, broker: Broker, topic_name: str, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap_servers, topic_name)
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, database_url, topic_name
    )
    # Settings read once first: msgspec builds a type's converter on its first use, and
    # two threads doing that at once crashed the interpreter (a segmentation fault).
    load_settings(config)
    consoles = [threading.Thread(target=browse, args=(config, looks)) for looks in (12, 9)]
    for console in consoles:
        console.start()
    for console in consoles:
        console.join(120)
    first, second = chains(store_engine)  # a sign-in, then each look: one row each
    assert [row["n"] for row in first] == list(range(13))
    assert len(second) == 10

    # Untouched: every row in a chain that ends in its published head.
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)
    status, report = verify(config)
    assert (status, report["problems"], report["chains"], report["rows"]) == (0, [], 2, 23)

    with store_engine.begin() as conn:
        # Deleted: a row inside the first chain; the cut tail: its last two rows.
        ids = [first[5]["id"], first[11]["id"], first[12]["id"]]
        conn.execute(delete(ACCESS_LOG).where(ACCESS_LOG.c.id.in_(ids)))
        # Altered: what a row of the second chain says.
        conn.execute(
            update(ACCESS_LOG)
            .where(ACCESS_LOG.c.id == second[3]["id"])
            .values(detail="operator=nobody")
        )
        # Inserted: a chain of one made up by the writer, its digest right; and a row in
        # no chain at all.
        made_up = {**first[0], "chain": uuid.uuid4().hex, "detail": "made up"}
        del made_up["id"]
        made_up["digest"] = row_digest(made_up)
        conn.execute(ACCESS_LOG.insert().values(**made_up))
        loose = {**second[0], "chain": None, "n": None, "prev": None, "digest": None}
        del loose["id"]
        conn.execute(ACCESS_LOG.insert().values(**loose))

    status, report = verify(config)
    found = {(p["finding"], tuple(p.get("rows", p.get("ids", [])))) for p in report["problems"]}
    assert status == 1
    assert ("deleted", (5, 5)) in found
    assert ("cut tail", (11, 12)) in found
    assert ("altered", (3, 3)) in found
    assert ("inserted", (0, 0)) in found  # the made-up chain
    assert (
        len([where for finding, where in found if finding == "inserted"]) == 2
    )  # and the loose row
    text = sshtrail(config, "access-log", "--verify", check=False)
    assert text.returncode == 1
    for word in ("deleted", "cut tail", "altered", "inserted", "problems"):
        assert word in text.stdout.decode()


def test_rows_in_no_chain_are_held_to_what_the_heads_say_was_there(
    store_engine: Engine, database_url: str, broker: Broker, topic_name: str, tmp_path: Path
) -> None:
    """Issue 32 #5, B3: which rows predate the chains is in the signed heads, not told by
    ids a database writer chooses. Two rows from before the chains (migration 0006) are
    checked, not flagged; a row put in no chain with an id below every other is inserted,
    a row from before the chains deleted is found."""
    create_topics(broker.bootstrap_servers, topic_name)
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, database_url, topic_name
    )
    old = {
        "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "auditor": "ann",
        "action": "view",
        "address": "10.0.0.1",
        "detail": "",
    }
    with store_engine.begin() as conn:  # written before the chains
        conn.execute(ACCESS_LOG.insert(), [{**old, "id": 10}, {**old, "id": 11}])
    browse(config, 2)
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)
    status, report = verify(config)
    assert (report["unchained"], report["unchained_checked"]) == (2, True)

    with store_engine.begin() as conn:
        conn.execute(
            ACCESS_LOG.insert().values({**old, "id": -7, "detail": "q='made up by the writer'"})
        )
    status, report = verify(config)
    assert status == 1
    assert report["problems"] == [
        {
            "finding": "inserted",
            "detail": "a row in no chain that was not there when the chains began",
            "ids": [-7, -7],
        }
    ]
    with store_engine.begin() as conn:
        conn.execute(delete(ACCESS_LOG).where(ACCESS_LOG.c.id == 10))
    status, report = verify(config)
    assert status == 1
    assert {
        "finding": "deleted",
        "detail": "1 of the 2 rows in no chain among ids 10-11 gone",
        "ids": [10, 11],
    } in report["problems"]


def test_a_fresh_installation_has_no_row_outside_the_chains(
    store_engine: Engine, database_url: str, broker: Broker, topic_name: str, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap_servers, topic_name)
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, database_url, topic_name
    )
    browse(config, 2)
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)
    [first] = chains(store_engine)
    loose = {**first[1], "chain": None, "n": None, "prev": None, "digest": None, "id": -7}
    with store_engine.begin() as conn:
        conn.execute(ACCESS_LOG.insert().values(**loose))
    status, report = verify(config)
    assert status == 1
    assert [(p["finding"], p["ids"]) for p in report["problems"]] == [("inserted", [-7, -7])]
    text = sshtrail(config, "access-log", "--verify", check=False)
    assert text.returncode == 1
    assert "from before the chains" not in text.stdout.decode()


def test_unreadable_values_are_reported_and_the_rest_still_checked(
    sqlite_url: str, broker: Broker, topic_name: str, tmp_path: Path
) -> None:
    """Issue 32 #5, B4: SQLite takes text in any column; a row a database writer filled
    with garbage is reported altered, the others are checked, and the listing shows it
    escaped -- no traceback."""
    create_topics(broker.bootstrap_servers, topic_name)
    migrate.upgrade(sqlite_url)
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, sqlite_url, topic_name
    )
    browse(config, 5)
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE access_log SET n = 'abc' WHERE n = 1"))
        conn.execute(text("UPDATE access_log SET at = 'not a time\x1b[2J' WHERE n = 3"))
        conn.execute(text("UPDATE access_log SET session_id = 'garbage' WHERE n = 4"))
        conn.execute(text("UPDATE access_log SET detail = 'changed' WHERE n = 5"))
        ids = dict(conn.execute(select(ACCESS_LOG.c.n, ACCESS_LOG.c.id)).all())
    engine.dispose()

    done = sshtrail(config, "access-log", "--verify", "--json", check=False)
    assert done.returncode == 1, done.stderr
    assert b"Traceback" not in done.stderr
    found = {(p["finding"], p["detail"].split(":")[0]) for p in json.loads(done.stdout)["problems"]}
    assert ("altered", "unreadable") in found
    unreadable = [
        p for p in json.loads(done.stdout)["problems"] if p["detail"].startswith("unreadable")
    ]
    by_id = {p["ids"][0]: p["detail"] for p in unreadable}
    assert sorted(by_id) == sorted([ids["abc"], ids[3], ids[4]])
    assert "n 'abc' is not a whole number" in by_id[ids["abc"]]
    assert ("altered", "its fields are not those its digest was made of") in found  # row 5

    listed = sshtrail(config, "access-log", "--limit", "10", check=False)
    assert listed.returncode == 0, listed.stderr
    assert b"Traceback" not in listed.stderr
    out = listed.stdout.decode()
    assert "[unreadable: at 'not a time\\x1b[2J'" in out.replace("\\\\", "\\")
    assert "\x1b" not in out


@pytest.mark.parametrize("where", ["no such topic", "no broker"])
def test_heads_that_cannot_be_read_are_not_a_verdict(
    sqlite_url: str, broker: Broker, topic_name: str, tmp_path: Path, where: str
) -> None:
    """B4: exit 4 (could not verify), not 0 or 1; 'sshtrail topics creates it' only when
    the topic is missing."""
    migrate.upgrade(sqlite_url)
    servers = broker.bootstrap_servers if where == "no such topic" else "127.0.0.1:1"
    config = write_config(tmp_path / "sshtrail.toml", servers, sqlite_url, topic_name)
    done = sshtrail(config, "access-log", "--verify", check=False)
    assert done.returncode == 4, done.stderr
    assert b"Traceback" not in done.stderr
    assert b"could not verify the access log" in done.stderr
    assert (b"sshtrail topics creates it" in done.stderr) == (where == "no such topic")
