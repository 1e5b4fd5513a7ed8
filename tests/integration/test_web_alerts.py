"""The console's alerts page and a session page's alert markers against a real store
(SQLite and PostgreSQL): the filters of ``sshtrail alerts``, scopes held to the alert's
session, the access log, hostile text shown as text, and bad filters answered with 400.
The page refreshing itself in a browser is tests/e2e/test_alerts_page.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from sshtrail.tables import ACCESS_LOG, ALERTS, SESSIONS
from tests.integration import test_web_http
from tests.integration.test_web_http import sign_in

pytestmark = pytest.mark.integration

#: The console of the HTTP tests, with their auditors: ann (admin), tom (target t1).
client = test_web_http.client

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOSTILE_TITLE = "<script>alert('title')</script>"
HOSTILE_COMMAND = "echo <img src=x onerror=alert('cmd')>"


def stored_alert(
    conn: object,
    session_id: uuid.UUID,
    *,
    title: str,
    level: str = "high",
    rule_id: str = "rule-1",
    t_s: float = 12.5,
    ago: dt.timedelta = dt.timedelta(minutes=1),
    command: str = "mkfifo /tmp/f",
    operator: str = "alice",
    target: str = "t1",
) -> str:
    """An ``alerts`` row as the alert group writes it; its id."""
    alert_id = uuid.uuid4().hex
    conn.execute(  # type: ignore[attr-defined]
        ALERTS.insert().values(
            id=alert_id,
            session_id=session_id,
            seq=3,
            t=int(t_s * 1e9),
            at=NOW - ago,
            rule_id=rule_id,
            title=title,
            level=level,
            author="tests",
            operator=operator,
            target=target,
            command=command,
            tags=["attack.execution"],
            event={"CommandLine": command},
            published=False,
            delivered=False,
        )
    )
    return alert_id


@pytest.fixture
def alerts(store_engine: Engine) -> dict[str, tuple[uuid.UUID, str]]:
    """Alerts on two sessions, ``alice@t1`` and ``alice@fwd``: name -> (session, alert id)."""
    sessions = {"t1": uuid.uuid4(), "fwd": uuid.uuid4()}
    made = {}
    with store_engine.begin() as conn:
        for target, session_id in sessions.items():
            conn.execute(
                SESSIONS.insert().values(
                    id=session_id,
                    operator="alice",
                    target=target,
                    started_at=NOW - dt.timedelta(days=3),
                    status="closed",
                    request="shell",
                    bytes_in=0,
                    bytes_out=0,
                    chunk_count=0,
                    gaps=[],
                )
            )
        t1, fwd = sessions["t1"], sessions["fwd"]
        made["pipe"] = t1, stored_alert(conn, t1, title="Named Pipe Created", level="low")
        made["hostile"] = (
            t1,
            stored_alert(
                conn, t1, title=HOSTILE_TITLE, rule_id="rule-2", t_s=30.25, command=HOSTILE_COMMAND
            ),
        )
        made["old"] = (
            t1,
            stored_alert(conn, t1, title="Old One", rule_id="rule-3", ago=dt.timedelta(days=2)),
        )
        made["secret"] = (
            fwd,
            stored_alert(conn, fwd, title="Other Target Secret", rule_id="rule-4", target="fwd"),
        )
    return made


def listed(client: TestClient, query: str = "") -> list[str]:
    """The alert ids the page lists, in its order."""
    page = client.get("/alerts" + query)
    assert page.status_code == 200, page.text
    return re.findall(r'data-alert="([0-9a-f]{32})"', page.text)


def test_the_filters_are_those_of_the_cli_newest_first(
    client: TestClient, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    ids = {name: alert_id for name, (_, alert_id) in alerts.items()}
    t1 = alerts["pipe"][0]
    assert sign_in(client, "ann").status_code == 303
    # Newest first: the hostile and the pipe alert are a minute old; 'old' two days.
    assert listed(client)[-1] == ids["old"]
    assert set(listed(client)) == set(ids.values())
    assert set(listed(client, "?since=1d")) == {ids["pipe"], ids["hostile"], ids["secret"]}
    assert listed(client, "?level=low") == [ids["pipe"]]
    assert listed(client, "?level=LOW") == [ids["pipe"]]  # as --level, any case
    assert listed(client, "?rule=rule-3") == [ids["old"]]
    assert listed(client, "?rule=Named+Pipe+Created") == [ids["pipe"]]
    assert listed(client, "?target=fwd") == [ids["secret"]]
    assert listed(client, "?operator=bob") == []
    assert set(listed(client, f"?session={t1}")) == {ids["pipe"], ids["hostile"], ids["old"]}
    assert set(listed(client, f"?session={t1.hex}&part=rows")) == set(
        listed(client, f"?session={t1}")
    )


def test_a_scoped_auditor_sees_only_alerts_of_sessions_in_scope(
    client: TestClient, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    secret_session, secret = alerts["secret"]
    assert sign_in(client, "tom").status_code == 303  # targets ["t1"]
    seen = listed(client)
    assert len(seen) == 3
    assert secret not in seen
    for query in (f"?session={secret_session.hex}", "?target=fwd", "?rule=rule-4"):
        assert listed(client, query) == [], query
        assert listed(client, query + "&part=rows") == [], query
    page = client.get("/alerts?part=rows")
    assert "Other Target Secret" not in page.text
    # The session page marks only its own alerts, and tom may not open fwd's at all.
    t1 = alerts["pipe"][0]
    session_page = client.get(f"/sessions/{t1.hex}")
    assert session_page.status_code == 200
    marked = re.findall(r'<li class="alert" data-alert="([0-9a-f]{32})"', session_page.text)
    assert set(marked) == {alerts[name][1] for name in ("pipe", "hostile", "old")}
    assert client.get(f"/sessions/{secret_session.hex}").status_code == 404


def test_each_alert_links_to_its_moment_and_the_session_page_marks_it(
    client: TestClient, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    session_id, hostile = alerts["hostile"]
    sign_in(client, "ann")
    page = client.get("/alerts?rule=rule-2")
    assert f'href="/sessions/{session_id.hex}?t=30.251#player"' in page.text
    session_page = client.get(f"/sessions/{session_id.hex}?t=30.251")
    marker = re.search(
        rf'data-alert="{hostile}"><button type="button" class="seek" data-t="([0-9.]+)"',
        session_page.text,
    )
    assert marker is not None
    assert marker[1] == "30.251"
    assert 'data-start="30.251"' in session_page.text
    # Markers go in the order of the recording, not of the alerts page.
    order = re.findall(r'<li class="alert" data-alert="([0-9a-f]{32})"', session_page.text)
    assert order[-1] == hostile


def test_hostile_titles_and_command_lines_are_shown_as_text(
    client: TestClient, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    sign_in(client, "ann")
    session_id = alerts["hostile"][0]
    for path in ("/alerts", "/alerts?part=rows", f"/sessions/{session_id.hex}"):
        text = client.get(path).text
        assert HOSTILE_TITLE not in text, path
        assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in text, path
        assert "<img src=x" not in text, path
        assert "&lt;img src=x onerror=alert(&#39;cmd&#39;)&gt;" in text, path


def test_opening_the_page_is_logged_with_its_filters_and_its_refreshes_are_not(
    client: TestClient, store_engine: Engine, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    sign_in(client, "tom")
    client.get("/alerts?level=high&since=2h")
    client.get("/alerts?level=high&since=2h&part=rows")
    client.get("/alerts?level=high&since=2h&part=rows")
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.auditor, ACCESS_LOG.c.action, ACCESS_LOG.c.detail)
            .where(ACCESS_LOG.c.action != "login")
            .order_by(ACCESS_LOG.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [("tom", "alerts", "since='2h' level='high'")]


def test_bad_filters_are_a_clear_400(
    client: TestClient, alerts: dict[str, tuple[uuid.UUID, str]]
) -> None:
    sign_in(client, "ann")
    for query, problem in (
        ("?level=severe", "level: one of informational, low, medium, high, critical"),
        ("?since=yesterday", "since: &#39;yesterday&#39; is neither a duration"),
        ("?since=999999999w", "since: &#39;999999999w&#39; is outside the times"),
        ("?session=zz", "session: a session&#39;s whole id"),
        ("?session=" + alerts["pipe"][0].hex[:12], "session: a session&#39;s whole id"),
        ("?level=%00", "level: one of"),
    ):
        for part in ("", "&part=rows"):
            answer = client.get("/alerts" + query + part)
            assert answer.status_code == 400, query + part
            assert 'class="problem"' in answer.text, query + part
            assert problem in answer.text, query + part
            assert "data-alert=" not in answer.text, query + part
    assert client.get("/alerts?rule=%00&operator=" + "x" * 5000).status_code == 200
