"""Flagged sessions stored by the real store writer on SQLite and PostgreSQL, found with
the real ``sshtrail sessions --flag`` and the console's flag filter."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from consumer.indexer import IndexWriter
from consumer.messages import Received
from consumer.store import StoreWriter
from consumer.web.app import create_app
from sshtrail import events as ev
from sshtrail import search
from sshtrail.wire import decode_chunk
from tests.integration.test_web_http import STATE_DIR, settings_for, sign_in
from tests.support.cli import sshtrail
from tests.support.flaggedsessions import flagged_sessions
from tests.support.kafka import KafkaCluster
from tests.support.recordings import events_session

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def stored(store_engine: Engine) -> dict[str, uuid.UUID]:
    """Each flag's session (and ``plain``), by the flag's name, stored as the store group
    stores them, transfers read in its background work."""
    made = flagged_sessions()
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    offset = 0
    for _, messages in made.values():
        batch = [Received(decode_chunk(m), 0, offset + i, NOW) for i, m in enumerate(messages)]
        writer.write(batch)
        offset += len(messages)
    while writer.background(5.0):
        pass
    return {flag: session_id for flag, (session_id, _) in made.items()}


def config_for(tmp_path: Path, engine: Engine) -> Path:
    url = engine.url.render_as_string(hide_password=False)
    path = tmp_path / "sshtrail.toml"
    path.write_text(f'state_dir = "{STATE_DIR}"\n[database]\nurl = "{url}"\n')
    return path


def test_sessions_lists_each_flag_through_the_cli(
    stored: dict[str, uuid.UUID], store_engine: Engine, tmp_path: Path
) -> None:
    config = config_for(tmp_path, store_engine)
    flags = sorted(set(stored) - {"plain"})
    for flag in flags:
        rows = json.loads(sshtrail(config, "sessions", "--flag", flag, "--json").stdout)
        assert [(row["session"], row["flags"]) for row in rows] == [(str(stored[flag]), [flag])]
    rows = json.loads(sshtrail(config, "sessions", "--flag", "any", "--json").stdout)
    assert {row["session"] for row in rows} == {str(stored[flag]) for flag in flags}
    table = sshtrail(config, "sessions", "--columns", "ID,FLAGS").stdout.decode().splitlines()
    assert sorted(line.split()[-1] for line in table[1:]) == sorted([*flags, "-"])
    shown = sshtrail(config, "show", stored["binary-stdin"].hex).stdout.decode()
    assert re.search(r"^ +flags  binary-stdin$", shown, re.M), shown
    refused = sshtrail(config, "sessions", "--flag", "nonsense", check=False)
    assert refused.returncode == 2
    assert b"invalid choice" in refused.stderr


def test_the_console_filters_on_a_flag_and_refuses_garbage(
    stored: dict[str, uuid.UUID], store_engine: Engine, broker: KafkaCluster
) -> None:
    app = create_app(
        settings_for(
            store_engine.url.render_as_string(hide_password=False), broker.bootstrap_servers
        )
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, "ann")
        for flag, session_id in stored.items():
            if flag == "plain":
                continue
            page = client.get(f"/sessions?flag={flag}")
            assert page.status_code == 200, page.text
            assert re.findall(r'data-session="([0-9a-f]{32})"', page.text) == [session_id.hex]
            assert f'<td class="flags">{flag}</td>' in page.text
        page = client.get("/sessions?flag=any")
        listed = set(re.findall(r'data-session="([0-9a-f]{32})"', page.text))
        assert listed == {s.hex for flag, s in stored.items() if flag != "plain"}
        for garbage in ("nonsense", "%00", "blind-eval,prompt-erases", "ANY"):
            answer = client.get(f"/sessions?flag={garbage}")
            assert answer.status_code == 400, garbage
            assert 'class="problem"' in answer.text


def prompt_session(ps1: bytes) -> tuple[uuid.UUID, list[bytes]]:
    """A bash session typed key by key: ``PS1=...`` at a normal prompt, after which the
    shell draws ``ps1``, then three commands."""
    prompt = b"deploy@web01:~$ "
    found: list[ev.Event] = [ev.Output(1, prompt)]
    t = 2
    for n, line in enumerate([b"PS1=...", b"echo a", b"echo b", b"echo c"]):
        for key in line:
            found += [ev.Input(t, bytes([key])), ev.Output(t, bytes([key]))]
            t += 1
        output = b"" if n == 0 else line[5:] + b"\r\n"
        found += [ev.Input(t, b"\r"), ev.Output(t + 1, b"\r\n" + output + ps1)]
        t += 2
    return events_session([found])


def test_the_console_lists_uncertain_prompt_from_the_index(
    store_engine: Engine, broker: KafkaCluster
) -> None:
    """The console's sessions list asks the search index (here in the store's database,
    as the console is set up) for ``uncertain-prompt``; without it the flag is unknown,
    said in a note, and the list stands."""
    made = {"empty": prompt_session(b""), "normal": prompt_session(b"deploy@web01:~$ ")}
    search.ensure_schema(store_engine)
    store, index = StoreWriter(store_engine, dt.timedelta(hours=1)), IndexWriter(store_engine)
    offset = 0
    for _, messages in made.values():
        batch = [Received(decode_chunk(m), 0, offset + i, NOW) for i, m in enumerate(messages)]
        store.write(batch)
        index.write(batch)
        offset += len(messages)
    empty = made["empty"][0].hex
    app = create_app(
        settings_for(
            store_engine.url.render_as_string(hide_password=False), broker.bootstrap_servers
        )
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        sign_in(client, "ann")
        for flag in ("uncertain-prompt", "any"):
            page = client.get(f"/sessions?flag={flag}")
            assert page.status_code == 200, page.text
            assert re.findall(r'data-session="([0-9a-f]{32})"', page.text) == [empty]
            assert '<td class="flags">uncertain-prompt</td>' in page.text
        assert "uncertain-prompt" in client.get(f"/sessions/{empty}").text
        assert "uncertain-prompt" not in client.get(f"/sessions/{made['normal'][0].hex}").text
        search.drop_schema(store_engine)
        assert client.get(f"/sessions/{empty}").status_code == 200
        page = client.get("/sessions?flag=uncertain-prompt")
        assert page.status_code == 200, page.text
        assert "the uncertain-prompt flag is unknown" in page.text
        assert re.findall(r'data-session="([0-9a-f]{32})"', page.text) == []
        page = client.get("/sessions")
        assert len(re.findall(r'data-session="([0-9a-f]{32})"', page.text)) == 2
