"""The console after retention, on SQLite and PostgreSQL: a deleted session is gone from
the sessions page and its own page, and the admins' Retention page shows the holds,
their releases and the deletions with their tombstones checked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.deletion import Deletion, delete_session
from consumer.messages import Received
from consumer.store import StoreWriter
from consumer.web.app import create_app
from sshtrail import holds
from sshtrail.tables import ACCESS_LOG
from sshtrail.wire import decode_chunk
from tests.integration.test_web_http import listed, settings_for, sign_in
from tests.support.kafka import KafkaCluster
from tests.support.recordings import recording

pytestmark = pytest.mark.integration


@pytest.fixture
def client(store_engine: Engine, broker: KafkaCluster) -> Iterator[TestClient]:
    url = str(store_engine.url.render_as_string(hide_password=False))
    app = create_app(settings_for(url, broker.bootstrap_servers))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_the_console_shows_holds_and_deletions_to_admins_only(
    client: TestClient, store_engine: Engine
) -> None:
    now = dt.datetime.now(dt.UTC)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    (gone, one), (held, two) = recording(chunks=3), recording(chunks=3, operator="bob")
    for messages in (one, two):
        writer.write([Received(decode_chunk(m), 0, i, now) for i, m in enumerate(messages)])
    with store_engine.begin() as conn:
        hold_id = holds.place(
            conn, by="legal", reason="<b>suit</b>", case="C-9", at=now, session_id=held
        )
        released = holds.place(conn, by="legal", reason="old", case="C-1", at=now, target="t7")
        holds.release(conn, released, by="counsel", reason="closed", at=now)
        delete_session(
            conn,
            gone,
            Deletion(
                rule=None,
                by="dpo",
                reason="GDPR request 118",
                signer=Ed25519PrivateKey.generate(),
                at=now,
            ),
        )
    assert sign_in(client, "ann").status_code == 303
    assert listed(client) == {held.hex}
    assert client.get(f"/sessions/{gone.hex}").status_code == 404
    page = client.get("/retention")
    assert page.status_code == 200, page.text
    assert f'data-hold="{hold_id}"' in page.text
    assert f'data-hold="{released}"' in page.text
    assert "by counsel: closed" in page.text
    assert "&lt;b&gt;suit&lt;/b&gt;" in page.text  # escaped, as every stored text
    assert f'data-deleted="{gone.hex}"' in page.text
    assert "deleted by dpo (GDPR request 118)" in page.text
    # No deletion key in this console's state dir: the signer is not checked, and said so.
    assert "signature ok (no deletion key here to check the signer against)" in page.text

    client.cookies.clear()
    assert sign_in(client, "tom").status_code == 303
    assert client.get("/retention").status_code == 404
    with store_engine.connect() as conn:
        actions = [
            (row.auditor, row.action, row.detail)
            for row in conn.execute(select(ACCESS_LOG).order_by(ACCESS_LOG.c.id))
            if row.action in ("retention", "denied")
        ]
    assert actions == [("ann", "retention", "page"), ("tom", "denied", "admin page /retention")]
