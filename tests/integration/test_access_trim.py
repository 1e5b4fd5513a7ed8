"""Issue 31: the access log's own retention (``retention.access_log_keep``) on SQLite and
PostgreSQL with real consoles and heads on Kafka: old rows go, each chain closed by a
signed checkpoint that ``access-log --verify`` starts from; tampering with a kept row or
a checkpoint is still found; session rules never delete access rows."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, func, select, update

from consumer.accesstrim import AccessTrim
from consumer.retentionwork import RetentionWork
from consumer.store import StoreWriter
from sshtrail import accesstrims, retention, tombstone
from sshtrail.accesschain import AccessChain
from sshtrail.scope import Scope
from sshtrail.settings import load_settings
from sshtrail.tables import ACCESS_LOG, ACCESS_LOG_TRIMS, SESSIONS
from tests.integration.test_access_chain import browse, chains, verify, write_config
from tests.integration.test_retention import received
from tests.support.cli import sshtrail
from tests.support.consumers import create_topics, wait_for
from tests.support.kafka import Broker
from tests.support.recordings import recording

pytestmark = pytest.mark.integration

DAY = dt.timedelta(days=1)


def trimmed_at(engine: Engine, chain: object) -> dict[str, object]:
    with engine.connect() as conn:
        query = select(ACCESS_LOG_TRIMS).where(ACCESS_LOG_TRIMS.c.chain == chain)
        return dict(conn.execute(query).mappings().one())


@pytest.fixture
def config(database_url: str, broker: Broker, topic_name: str, tmp_path: Path) -> Path:
    create_topics(broker.bootstrap_servers, topic_name)
    return write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, database_url, topic_name
    )


def test_old_rows_go_behind_a_signed_checkpoint_and_verify_still_finds_tampering(
    store_engine: Engine, config: Path
) -> None:
    browse(config, 2)  # a console whose every row will be old: its whole chain goes
    browse(config, 6)  # one whose first four rows will be
    whole, part = sorted(chains(store_engine), key=len)
    assert (len(whole), len(part)) == (3, 7)
    cutoff = part[4]["at"]
    assert isinstance(cutoff, dt.datetime)
    assert cutoff > part[3]["at"]  # type: ignore[operator]
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)

    signer = tombstone.signing_key(load_settings(config))
    trim = AccessTrim(store_engine, "1d", 60.0, signer, clock=lambda: cutoff + DAY)
    work = RetentionWork(store_engine, [], 60.0, signer, access_trim=trim)
    assert work.run(10.0) is False
    assert trim.dropped == 3 + 4
    left = chains(store_engine)
    assert [[row["n"] for row in chain] for chain in left] == [[4, 5, 6]]

    status, report = verify(config)
    assert (status, report["problems"], report["rows"]) == (0, [], 3)
    assert sorted((t["chain"], t["rows"]) for t in report["trimmed"]) == sorted(
        [(whole[0]["chain"], [0, 2]), (part[0]["chain"], [0, 3])]
    )
    text = sshtrail(config, "access-log", "--verify", check=False).stdout.decode()
    digest = part[3]["digest"]
    assert isinstance(digest, bytes)
    assert f"rows 0-3 dropped by access_log_keep (1d) at {cutoff + DAY:%Y-%m-%d %H:%M:%S} UTC" in (
        text
    )
    assert f"chain continued from hash {digest.hex()}" in text

    # Looking again drops nothing more.
    fresh = AccessTrim(store_engine, "1d", 60.0, signer, clock=lambda: cutoff + DAY)
    assert fresh.run(10.0) is False
    assert fresh.dropped == 0

    # A kept row changed: found as before.
    kept = ACCESS_LOG.c.id == part[5]["id"]
    with store_engine.begin() as conn:
        conn.execute(update(ACCESS_LOG).where(kept).values(detail="operator=nobody"))
    status, report = verify(config)
    assert status == 1
    assert [(p["finding"], p["rows"]) for p in report["problems"]] == [("altered", [5, 5])]
    with store_engine.begin() as conn:
        conn.execute(update(ACCESS_LOG).where(kept).values(detail=part[5]["detail"]))
    assert verify(config)[0] == 0

    # The checkpoint changed: not trusted, so the chain is checked from row 0 again.
    mine = (ACCESS_LOG_TRIMS.c.chain == part[0]["chain"]) & (ACCESS_LOG_TRIMS.c.n == 3)
    with store_engine.begin() as conn:
        conn.execute(update(ACCESS_LOG_TRIMS).where(mine).values(keep="7y"))
    status, report = verify(config)
    found = {(p["finding"], tuple(p["rows"])) for p in report["problems"]}
    assert status == 1
    assert found == {("altered", (0, 3)), ("deleted", (0, 3))}
    assert "its row differs from what was signed" in str(report["problems"])

    # A checkpoint made by someone else's key, claiming rows 4 and 5 went too.
    row = trimmed_at(store_engine, part[0]["chain"])
    forged = accesstrims.checkpoint_row(
        chain=str(row["chain"]),
        first=0,
        n=5,
        digest=part[5]["digest"],  # type: ignore[arg-type]
        trimmed_at=cutoff + DAY,
        cutoff=cutoff,
        keep="1d",
        trimmed_by="a database writer",
        signer=Ed25519PrivateKey.generate(),
    )
    with store_engine.begin() as conn:
        conn.execute(delete(ACCESS_LOG_TRIMS).where(mine))
        conn.execute(ACCESS_LOG_TRIMS.insert().values(**forged))
        conn.execute(delete(ACCESS_LOG).where(ACCESS_LOG.c.id.in_([part[4]["id"], part[5]["id"]])))
    status, report = verify(config)
    assert status == 1
    assert "signed by a key that is not the deletion key" in str(report["problems"])
    assert ("deleted", [0, 5]) in [(p["finding"], p["rows"]) for p in report["problems"]]

    # The checkpoint deleted: the rows it closed read as deleted.
    with store_engine.begin() as conn:
        conn.execute(delete(ACCESS_LOG_TRIMS).where(ACCESS_LOG_TRIMS.c.chain == part[0]["chain"]))
    status, report = verify(config)
    assert status == 1
    assert ("deleted", [0, 5]) in [(p["finding"], p["rows"]) for p in report["problems"]]


def test_a_changed_row_is_not_trimmed_away(store_engine: Engine, config: Path) -> None:
    """A trim checks what it drops: a changed old row stays, and verify still finds it."""
    browse(config, 3)
    (chain,) = chains(store_engine)
    wait_for(lambda: verify(config)[0] == 0, what="the access log verified", timeout=60)
    with store_engine.begin() as conn:
        changed = update(ACCESS_LOG).where(ACCESS_LOG.c.id == chain[1]["id"])
        conn.execute(changed.values(detail="nothing to see"))
    signer = tombstone.signing_key(load_settings(config))
    later = dt.datetime.now(dt.UTC) + 2 * DAY
    trim = AccessTrim(store_engine, "1d", 60.0, signer, clock=lambda: later)
    trim.run(10.0)
    assert trim.dropped == 0
    status, report = verify(config)
    assert status == 1
    assert [(p["finding"], p["rows"]) for p in report["problems"]] == [("altered", [1, 1])]
    assert report["trimmed"] == []


class _Heads:
    """Heads kept in a list: this test checks no head."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def publish(self, key: bytes, value: bytes) -> None:
        self.sent.append(value)

    def close(self) -> None:
        """Nothing waits."""


def test_session_rules_never_delete_access_rows(store_engine: Engine) -> None:
    sid, messages = recording(chunks=3, operator="alice", target="t1")
    StoreWriter(store_engine, dt.timedelta(hours=1)).write(received(messages))
    chain = AccessChain(store_engine, _Heads(), Ed25519PrivateKey.generate())
    for action in ("view", "replay"):
        chain.append(
            {
                "at": dt.datetime.now(dt.UTC),
                "auditor": "ann",
                "action": action,
                "address": "10.0.0.1",
                "session_id": sid,
                "detail": "",
            }
        )
    everything = retention.Rule("all", Scope(("*",), ("*",)), dt.timedelta(seconds=5), None)
    far = dt.datetime.now(dt.UTC) + 3650 * DAY
    work = RetentionWork(
        store_engine, [everything], 60.0, Ed25519PrivateKey.generate(), clock=lambda: far
    )
    work.run(10.0)
    assert work.deleted == 1
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SESSIONS)).scalar() == 0
        query = select(func.count()).where(ACCESS_LOG.c.session_id == sid)
        assert conn.execute(query).scalar() == 2
        assert conn.execute(select(func.count()).select_from(ACCESS_LOG_TRIMS)).scalar() == 0
    assert isinstance(sid, uuid.UUID)
