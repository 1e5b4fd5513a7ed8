"""The console's moderation page and its presence endpoint against a real store, with the
control topic in memory (the board and the presence sender are the page's ports): the
form's token, the state, the session's moderation and the auditor's scope are checked
before anything is sent; joins and leaves are in the access log, heartbeats are not, and
a moderation whose heartbeats stop is told ended. The whole path through a real gateway
is tests/e2e/test_moderation_console.py."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.moderation import ModerationItem
from consumer.web.app import create_app
from consumer.web.pages.moderation import REJOINED, ModerationPorts
from sshtrail import control
from sshtrail.errors import BrokerError
from sshtrail.tables import ACCESS_LOG
from tests.integration.test_web_http import settings_for, sign_in
from tests.support.kafka import KafkaCluster
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Board:
    """The gateways' latest words, as a test sets them."""

    states: list[control.ModerationState] = field(default_factory=list)
    broken: bool = False

    def current(self) -> list[ModerationItem]:
        if self.broken:
            raise BrokerError("no broker here")
        return [ModerationItem(state) for state in self.states]

    def close(self) -> None:
        pass


@dataclass
class Presences:
    """What would have gone to the control topic."""

    sent: list[tuple[str, str, tuple[str, ...], str]] = field(default_factory=list)

    def send(
        self,
        session: str,
        moderator: str,
        groups: Iterable[str],
        state: control.PresenceState,
        *,
        wait_s: float = 0.0,
    ) -> None:
        self.sent.append((session, moderator, tuple(groups), state))

    def close(self) -> None:
        pass


def state(
    session: uuid.UUID, phase: control.ModerationPhase, target: str = "t1", present: str = ""
) -> control.ModerationState:
    now = control.now_ns()
    return control.ModerationState(
        request_id=control.new_id(),
        at=now,
        gateway="gw-one",
        session=str(session),
        operator="alice",
        target=target,
        rule="payments",
        needed=1,
        present=tuple(p for p in [present] if p),
        phase=phase,
        on_leave="pause",
        deadline=now + 60_000_000_000 if phase == "waiting" else 0,
        detail="",
    )


@dataclass
class Console:
    client: TestClient
    board: Board
    presences: Presences
    sessions: dict[str, uuid.UUID]
    #: The heartbeats' clock, in seconds: a test moves it on.
    now: list[float]


@pytest.fixture
def console(store_engine: Engine, broker: KafkaCluster) -> Iterator[Console]:
    board, presences = Board(), Presences()
    sessions = {name: uuid.uuid4() for name in ("waiting", "paused", "running", "ended", "db")}
    board.states = [
        state(sessions["waiting"], "waiting"),
        state(sessions["paused"], "paused"),
        state(sessions["running"], "running", present="ann"),
        state(sessions["ended"], "ended"),
        state(sessions["db"], "waiting", target="db-1"),
    ]
    url = str(store_engine.url.render_as_string(hide_password=False))
    now = [1000.0]
    ports = ModerationPorts(
        board=lambda: board, presences=lambda: presences, clock=lambda: now[0], fresh_s=0.0
    )
    with TestClient(
        create_app(settings_for(url, broker.bootstrap_servers), ports), base_url="http://127.0.0.1"
    ) as client:
        yield Console(client, board, presences, sessions, now)


def token(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/sessions").text)
    assert found is not None
    return found[1]


def actions(store_engine: Engine, auditor: str) -> list[tuple[str, str]]:
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(ACCESS_LOG.c.action, ACCESS_LOG.c.detail)
            .where(ACCESS_LOG.c.auditor == auditor)
            .where(ACCESS_LOG.c.action.in_(["moderation", "moderate", "moderate-end", "denied"]))
            .order_by(ACCESS_LOG.c.id)
        ).all()
    return [(action, detail) for action, detail in rows]


def test_the_page_lists_what_needs_a_moderator_and_what_runs_in_scope(
    console: Console, store_engine: Engine
) -> None:
    sessions = console.sessions
    assert sign_in(console.client, "tom").status_code == 303  # scoped to target t1
    page = console.client.get("/moderation")
    assert page.status_code == 200, page.text
    assert 'href="/moderation"' in page.text  # in the nav
    needing = page.text.split('id="needing"')[1].split('id="running"')[0]
    running = page.text.split('id="running"')[1]
    assert sessions["waiting"].hex in needing
    assert sessions["paused"].hex in needing
    assert f'href="/sessions/{sessions["waiting"].hex}?moderate=1"' in needing
    assert "input held" in needing
    assert sessions["running"].hex in running
    assert "1 of 1 (ann)" in running
    assert sessions["ended"].hex not in page.text
    assert sessions["db"].hex not in page.text  # another target: out of tom's scope
    rows = console.client.get("/moderation?part=rows")
    assert rows.status_code == 200
    assert "<html" not in rows.text
    assert sessions["waiting"].hex in rows.text
    assert actions(store_engine, "tom") == [("moderation", "")]  # the refresh is not logged
    console.board.broken = True
    broken = console.client.get("/moderation?part=rows")
    assert broken.status_code == 503
    assert "the control topic cannot be read" in broken.text


def test_garbage_scope_and_sessions_without_moderation_are_refused_before_sending(
    console: Console, store_engine: Engine
) -> None:
    sessions = console.sessions
    assert sign_in(console.client, "tom").status_code == 303
    good = token(console.client)
    waiting = sessions["waiting"].hex
    cases = [
        (waiting, {"csrf": "forged", "state": "join"}, 403),
        (waiting, {"state": "join"}, 403),
        (waiting, {"csrf": good, "state": "dance"}, 400),
        (waiting, {"csrf": good}, 400),
        ("../../etc", {"csrf": good, "state": "join"}, 404),
        (uuid.uuid4().hex, {"csrf": good, "state": "join"}, 404),  # not moderated
        (sessions["ended"].hex, {"csrf": good, "state": "join"}, 409),
        (sessions["db"].hex, {"csrf": good, "state": "join"}, 403),  # out of scope
    ]
    for session, form, status in cases:
        answered = console.client.post(f"/sessions/{session}/moderate", data=form)
        assert answered.status_code == status, (session, form, answered.text[:300])
    unmoderated = console.client.post(
        f"/sessions/{uuid.uuid4().hex}/moderate", data={"csrf": good, "state": "join"}
    )
    assert "this session is not moderated" in unmoderated.text
    assert console.presences.sent == []
    assert ("denied", "moderate join") in actions(store_engine, "tom")
    console.board.broken = True
    away = console.client.post(
        f"/sessions/{waiting}/moderate", data={"csrf": good, "state": "join"}
    )
    assert away.status_code == 503
    assert console.client.get("/sessions").status_code == 200
    nobody = TestClient(console.client.app, base_url="http://127.0.0.1")
    refused = nobody.post(f"/sessions/{waiting}/moderate", data={"state": "join"})
    assert refused.url.path == "/login"


def test_joins_and_leaves_are_logged_heartbeats_are_not_and_silence_ends_a_moderation(
    console: Console, store_engine: Engine
) -> None:
    sessions = console.sessions
    assert sign_in(console.client, "ann").status_code == 303
    good = token(console.client)
    waiting, running = sessions["waiting"], sessions["running"]

    def post(session: uuid.UUID, presence: str) -> dict[str, object]:
        answered = console.client.post(
            f"/sessions/{session.hex}/moderate", data={"csrf": good, "state": presence}
        )
        assert answered.status_code == 200, answered.text
        said: dict[str, object] = answered.json()
        return said

    joined = post(waiting, "join")
    assert (joined["status"], joined["counted"]) == ("waiting", False)
    for _ in range(3):
        post(waiting, "here")
    assert post(running, "join")["counted"] is True  # the gateway's word: ann is present
    post(waiting, "leave")
    post(waiting, "leave")  # once more (the page's beacon after its button): not logged again
    late = post(waiting, "here")  # on its way when the button was pressed: answered ...
    assert late["sent"] is False  # ... but not sent: the gateway would count ann again
    assert [(s, who, state) for s, who, _, state in console.presences.sent] == [
        (str(waiting), "ann", "join"),
        *[(str(waiting), "ann", "here")] * 3,
        (str(running), "ann", "join"),
        (str(waiting), "ann", "leave"),
        (str(waiting), "ann", "leave"),
    ]
    logged = actions(store_engine, "ann")
    assert logged == [
        ("moderate", "joined: rule payments, gateway gw-one"),
        ("moderate", "joined: rule payments, gateway gw-one"),
        ("moderate-end", "left"),
    ]
    # The running session's page is closed without a word: its heartbeats stop, and the
    # console's sweep (every second) tells it ended once the gateway stops counting.
    console.now[0] += control.PRESENCE_TTL_S - 0.5
    time.sleep(1.5)
    assert actions(store_engine, "ann")[-1] == ("moderate-end", "left")
    console.now[0] += 1.0
    wait_for(
        lambda: (
            actions(store_engine, "ann")[-1] == ("moderate-end", "moderation ended (no heartbeat)")
        ),
        what="the silent moderation told ended",
        timeout=5,
    )
    post(running, "here")  # the tab wakes up: a moderation again
    assert actions(store_engine, "ann")[-1] == (
        "moderate",
        f"{REJOINED}: rule payments, gateway gw-one",
    )
