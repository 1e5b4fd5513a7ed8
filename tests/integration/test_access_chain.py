"""Issue 32, #5 (d): the access log is hash chains whose signed heads are on Kafka, and
``sshtrail access-log --verify`` finds rows a database writer deleted, altered or
inserted, and a cut tail -- two consoles writing at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select, update
from starlette.testclient import TestClient

from consumer.web.app import create_app
from sshtrail.accesschain import row_digest
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
