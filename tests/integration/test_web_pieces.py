"""The player's recording in pieces over HTTP: the index, each piece with the screen at its
start, within scope, logged, and bad piece parameters refused (sqlite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from consumer.messages import Received
from consumer.store import StoreWriter
from consumer.web.app import create_app
from sshtrail import events as ev
from sshtrail.pieces import PIECE_BYTES
from sshtrail.screenstate import ScreenState
from sshtrail.tables import ACCESS_LOG, SESSIONS
from sshtrail.wire import decode_chunk
from tests.integration.test_web_http import settings_for, sign_in
from tests.support.kafka import KafkaCluster
from tests.support.recordings import events_session
from tests.support.storerows import session_row

pytestmark = pytest.mark.integration

SECOND = 1_000_000_000
#: Output chunks of the stored session, each a screenful of numbered lines and a second apart.
CHUNKS = 14
CHUNK_BYTES = PIECE_BYTES // 3


def _output(n: int) -> bytes:
    line = f"chunk {n:03d} line {{:06d}} \x1b[1;3{n % 8}mbold\x1b[0m of some recorded text\r\n"
    out = bytearray()
    while len(out) < CHUNK_BYTES:
        out += line.format(len(out)).encode()
    return bytes(out)


OUTPUTS = [_output(n) for n in range(CHUNKS)]


def _at(n: int) -> int:
    """When output chunk ``n`` was recorded: a second apart, and a pause of 100 s before 7."""
    return (n + 1) * SECOND + (100 * SECOND if n >= 7 else 0)


@pytest.fixture
def recorded(store_engine: Engine) -> dict[str, uuid.UUID]:
    """Two stored sessions: one of alice's on t1 (big enough for several pieces), one of
    bob's on t2 (out of tom's scope)."""
    ids = {}
    for operator, target in (("alice", "t1"), ("bob", "t2")):
        chunks: list[list[ev.Event]] = [[ev.Output(_at(n), data)] for n, data in enumerate(OUTPUTS)]
        chunks.insert(3, [ev.Resize(3 * SECOND + 5, 100, 30)])
        session_id, messages = events_session(chunks, operator=operator, target=target)
        now = dt.datetime.now(dt.UTC)
        writer = StoreWriter(store_engine, dt.timedelta(hours=1))
        writer.write([Received(decode_chunk(m), 0, i, now) for i, m in enumerate(messages)])
        ids[operator] = session_id
    return ids


@pytest.fixture
def client(store_engine: Engine, broker: KafkaCluster) -> Iterator[TestClient]:
    url = str(store_engine.url.render_as_string(hide_password=False))
    app = create_app(settings_for(url, broker.bootstrap_servers))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        assert sign_in(test_client, "tom").status_code == 303
        yield test_client


def _checked(index: dict[str, Any], n: int, piece: dict[str, Any]) -> None:
    """What asciinema-player checks of a segment before playing it (its loadSegment)."""
    starts = [s["start"] for s in index["segments"]]
    end = starts[n + 1] if n + 1 < len(starts) else index["duration"]
    times = [e[0] for e in piece["events"]]
    assert times == sorted(times)
    assert times[0] == starts[n]
    assert all(starts[n] <= t < end for t in times) or n == len(starts) - 1
    if n == len(starts) - 1:
        assert times[-1] == index["duration"]
        assert all(starts[n] <= t <= end for t in times)


def test_a_recording_is_served_in_pieces_each_with_the_screen_at_its_start(
    client: TestClient, recorded: dict[str, uuid.UUID]
) -> None:
    session = recorded["alice"].hex
    answer = client.get(f"/sessions/{session}/pieces")
    assert answer.status_code == 200, answer.text
    index = answer.json()
    starts = [s["start"] for s in index["segments"]]
    assert len(starts) >= 4
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    assert index["term"] == {"cols": 80, "rows": 24}
    played = ScreenState(80, 24)
    for n, segment in enumerate(index["segments"]):
        assert segment["url"] == f"/sessions/{session}/pieces/{n}"
        piece = client.get(segment["url"]).json()
        _checked(index, n, piece)
        snapshot = piece["snapshot"]
        # The screen at the piece's start is the screen after everything before it.
        assert (snapshot["cols"], snapshot["rows"]) == played.size
        assert snapshot["init"] == ("" if n == 0 else played.paint())
        for _t, code, data in piece["events"]:
            if code == "o":
                played.feed(ev.Output(0, data.encode()))
            elif code == "r":
                cols, rows = map(int, data.split("x"))
                played.feed(ev.Resize(0, cols, rows))
    assert played.size == (100, 30)
    last = OUTPUTS[-1].decode().split("\r\n")[-2]
    assert last.split("\x1b")[0] in played.paint()


def test_the_idle_limit_cuts_pauses_on_the_pieces_timeline(
    client: TestClient, recorded: dict[str, uuid.UUID]
) -> None:
    session = recorded["alice"].hex
    whole = client.get(f"/sessions/{session}/pieces").json()
    cut = client.get(f"/sessions/{session}/pieces?idle=2").json()
    assert whole["duration"] == pytest.approx(_at(CHUNKS - 1) / SECOND, abs=0.01)
    assert cut["duration"] == pytest.approx(whole["duration"] - 99, abs=0.01)  # 101 s: 2 s
    assert all(s["url"].endswith("?idle=2") for s in cut["segments"])
    for n, segment in enumerate(cut["segments"]):
        _checked(cut, n, client.get(segment["url"]).json())


def test_the_session_page_opens_the_player_at_the_moment_on_the_cut_timeline(
    client: TestClient, recorded: dict[str, uuid.UUID]
) -> None:
    """A search hit's ?t= is the session's time; with the idle limit the player's is 99 s
    less after the 101 s pause (cut to 2 s), and the timeline's buttons are moved so."""
    session = recorded["alice"].hex
    page = client.get(f"/sessions/{session}?t=110&idle=2").text
    assert 'data-start="11.000"' in page
    assert 'data-steps="[[108.0,99.0]]"' in page
    assert f'data-pieces="/sessions/{session}/pieces?idle=2"' in page
    assert 'data-still="1.001"' in page  # the end of the first output chunk
    whole = client.get(f"/sessions/{session}?t=110&idle=").text
    assert 'data-start="110.000"' in whole
    assert 'data-steps="[]"' in whole


def test_a_session_with_nothing_stored_keeps_the_whole_recordings_player(
    client: TestClient, store_engine: Engine
) -> None:
    """A refused login has no chunks: no pieces to play, the empty asciicast instead."""
    session_id = uuid.uuid4()
    with store_engine.begin() as conn:
        conn.execute(SESSIONS.insert().values(session_row(session_id, "refused")))
    page = client.get(f"/sessions/{session_id.hex}").text
    assert 'data-pieces=""' in page
    assert client.get(f"/sessions/{session_id.hex}/pieces").status_code == 404


def test_a_piece_asked_first_deep_in_the_recording_has_the_same_screen(
    client: TestClient, recorded: dict[str, uuid.UUID]
) -> None:
    """A seek: the last piece asked before any other (the screen is emulated up to it)."""
    session = recorded["alice"].hex
    index = client.get(f"/sessions/{session}/pieces").json()
    n = len(index["segments"]) - 1
    deep = client.get(f"/sessions/{session}/pieces/{n}").json()
    # Drawn from the output just before the piece (consumer/web/screens.py: WINDOW).
    before = OUTPUTS[CHUNKS - 2].decode().split("\r\n")[-2].split("\x1b")[0]
    assert before in deep["snapshot"]["init"]
    for k in range(n):  # then from the start, in order: the same screen at n
        client.get(f"/sessions/{session}/pieces/{k}")
    assert client.get(f"/sessions/{session}/pieces/{n}").json() == deep


def test_pieces_are_in_scope_and_logged_as_the_recording_is(
    client: TestClient, store_engine: Engine, recorded: dict[str, uuid.UUID]
) -> None:
    hidden = recorded["bob"].hex
    assert client.get(f"/sessions/{hidden}/pieces").status_code == 404
    assert client.get(f"/sessions/{hidden}/pieces/0").status_code == 404
    visible = recorded["alice"]
    client.get(f"/sessions/{visible.hex}/pieces?input=1")
    client.get(f"/sessions/{visible.hex}/pieces/1")
    with store_engine.connect() as conn:
        rows = conn.execute(select(ACCESS_LOG).order_by(ACCESS_LOG.c.id)).mappings().all()
    seen = [(r["action"], r["session_id"], r["detail"]) for r in rows if r["action"] != "login"]
    count = len(client.get(f"/sessions/{visible.hex}/pieces").json()["segments"])
    assert seen == [
        ("denied", recorded["bob"], "out of scope"),
        ("denied", recorded["bob"], "out of scope"),
        ("replay", visible, f"in {count} pieces, with input"),
        ("replay", visible, "piece 1"),
    ]


#: Bad piece parameters: each is a 400, not a guess, a 500 or a piece.
BAD = [
    "/pieces/x",
    "/pieces/-1",
    "/pieces/1.5",
    "/pieces/+1",
    "/pieces/%201",
    "/pieces/1e3",
    "/pieces/0x1",
    "/pieces/99",
    "/pieces/1000000000",
    "/pieces/99999999999999999999999",
    "/pieces/0?input=2",
    "/pieces?input=yes",
    "/pieces?idle=3",
    "/pieces/0?idle=-1",
    "/pieces/0?idle=2.0",
]


def test_bad_piece_parameters_are_a_400(client: TestClient, recorded: dict[str, uuid.UUID]) -> None:
    for path in BAD:
        answer = client.get(f"/sessions/{recorded['alice'].hex}{path}")
        assert answer.status_code == 400, (path, answer.status_code)
