"""Retention with the real groups on the real broker: a ``keep = "5s"`` rule empties the
store and the index of what it covers, a held session stays, and the commands say so."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from sshtrail import search
from sshtrail.db import make_engine
from sshtrail.tables import DELETIONS, SESSIONS
from tests.support.cli import sshtrail
from tests.support.consumers import group_lag, start_member, wait_for, write_config
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, typed_session

pytestmark = pytest.mark.integration

RULES = """
[retention]
check_s = 0.5

[[retention.rule]]
name = "five-seconds"
operators = ["alice", "carol"]
keep = "5s"
"""


def ids(engine: Engine, column: object) -> set[uuid.UUID]:
    with engine.connect() as conn:
        return set(conn.execute(select(column)).scalars())  # type: ignore[call-overload]


def indexed(engine: Engine, session_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        query = select(search.DOCS.c.id).where(search.DOCS.c.session_id == session_id)
        return len(conn.execute(query).all())


def test_a_five_second_rule_with_the_real_groups(
    broker: Broker, store_topic: str, database_url: str, store_engine: Engine, tmp_path: Path
) -> None:
    servers = broker.bootstrap_servers
    search_url = f"sqlite:///{tmp_path / 'search.db'}"
    config = write_config(
        tmp_path / "sshtrail.toml", servers, store_topic, database_url, search_url
    )
    config.write_text(config.read_text() + RULES)
    held = sshtrail(
        config, "hold", "add", "--operator", "carol", "--reason", "lawsuit", "--case", "C-7"
    )
    hold_id = held.stdout.decode().split()[1]
    alice_id, alice = typed_session([("cat /etc/secretfile", "s3cr3t-value")], operator="alice")
    bob_id, bob = typed_session([("uptime", "up 3 days")], operator="bob")
    carol_id, carol = typed_session([("whoami", "carol")], operator="carol")
    store = start_member(config, "store")
    index = start_member(config, "index")
    index_engine = make_engine(search_url)
    try:
        produce(servers, store_topic, [*keyed(alice_id, alice), *keyed(bob_id, bob)])
        produce(servers, store_topic, keyed(carol_id, carol))
        wait_for(
            lambda: alice_id in ids(store_engine, DELETIONS.c.session_id),
            timeout=60,
            what="the rule to delete alice's session",
        )
        wait_for(lambda: indexed(index_engine, bob_id) > 0, what="bob's session indexed")
        wait_for(lambda: indexed(index_engine, alice_id) == 0, what="the index purge")
        wait_for(
            lambda: sum(group_lag(servers, f"{store_topic}-store", store_topic).values()) == 0,
            what="the store group to commit everything",
        )
    finally:
        for member in (store, index):
            status, _, err = member.stop(signal.SIGTERM)
            assert status == 0, err
        index_engine.dispose()
    assert ids(store_engine, SESSIONS.c.id) == {bob_id, carol_id}

    # The deleted session's offsets read again, through both groups' writers: it stays
    # gone (the tombstone wins), and completeness counts its offsets as deleted.
    for group in ("store", "index"):
        sshtrail(config, "reprocess", "--group", group, "--from-offset", "0", timeout=120)
    assert ids(store_engine, SESSIONS.c.id) == {bob_id, carol_id}
    index_engine = make_engine(search_url)
    assert indexed(index_engine, alice_id) == 0
    index_engine.dispose()
    whole = sshtrail(config, "completeness", timeout=120)
    assert f"{len(alice)} deleted by retention or by hand, 0 missing" in whole.stdout.decode()
    assert b"DATA-LOSS" not in whole.stdout

    listed = json.loads(sshtrail(config, "sessions", "--json").stdout)
    assert {row["id"] for row in listed} == {str(bob_id), str(carol_id)}
    found = sshtrail(config, "search", "s3cr3t", check=False)
    assert found.returncode == 1
    assert b"s3cr3t" not in found.stdout
    shown = sshtrail(config, "show", alice_id.hex, check=False)
    assert shown.returncode == 3
    assert "was deleted by rule five-seconds at " in shown.stderr.decode()
    held_json = json.loads(sshtrail(config, "show", str(carol_id), "--json").stdout)
    assert [(h["id"], h["case"], h["released_at"]) for h in held_json["holds"]] == [
        (hold_id, "C-7", None)
    ]

    deletions = json.loads(sshtrail(config, "deletions", "--json").stdout)
    assert [(d["session"], d["rule"], d["signature_ok"]) for d in deletions] == [
        (str(alice_id), "five-seconds", True)
    ]
    # The whole id: the three sessions are uuid7s made in one millisecond or so, so a
    # 12-digit prefix of the deleted one may name a stored one (then that one is verified).
    verified = sshtrail(config, "verify", alice_id.hex)
    text = verified.stdout.decode()
    assert "deleted by rule five-seconds at " in text
    assert "chain was intact (hash " + deletions[0]["final_digest"] + ")" in text

    refused = sshtrail(config, "delete", str(carol_id), "--reason", "GDPR art. 17", check=False)
    assert refused.returncode == 1
    assert f"under legal hold ({hold_id})" in refused.stderr.decode()
    plan = json.loads(sshtrail(config, "retention", "plan", "--json").stdout)
    assert [(p["session"], p["held_by"]) for p in plan] == [(str(carol_id), [hold_id])]

    sshtrail(config, "hold", "release", hold_id, "--reason", "case closed")
    removed = sshtrail(config, "delete", str(bob_id), "--reason", "GDPR art. 17", "--as", "dpo")
    assert "deleted by dpo (GDPR art. 17)" in removed.stdout.decode()
    holds = json.loads(sshtrail(config, "hold", "list", "--all", "--json").stdout)
    assert [(h["id"], h["released_by"] is not None) for h in holds] == [(hold_id, True)]
