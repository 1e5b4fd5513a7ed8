"""``sshtrail replay`` of a forwarded connection: its bytes never reach a terminal."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pexpect
import pytest

from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import events as ev
from sshtrail import migrate
from sshtrail.chain import ChainWriter
from sshtrail.db import make_engine
from sshtrail.ids import uuid7
from sshtrail.wire import decode_chunk
from tests.support.cli import sshtrail
from tests.support.gateway import toml_value
from tests.support.recordings import SIGNER

pytestmark = pytest.mark.integration

#: What a forwarded connection to a PostgreSQL server might carry back: not
#: terminal output, and here with a sequence that would retitle the window.
FORWARDED = b"R\x00\x00\x00\x08\x00\x00\x00\x00\x1b]0;pwned\x07Z"


#: What a hostile session prints to make an auditor's terminal answer, or keep changes.
HOSTILE = (
    b"hello\x1b[6n\x1b[c\x1b]52;c;cm0gLXJmIC8K\x07\x1b]0;pwned\x07"
    b"\x1b[?1000h\x1b[?2004h\x1b[?1049hworld\r\n"
)


def stored(
    tmp_path: Path,
    request: ev.Exec,
    events: list[ev.Event],
    term: str = "",
    size: tuple[int, int] = (80, 24),
) -> tuple[Path, str]:
    """A settings file over a SQLite store holding one recorded session of ``events``."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    session_id = uuid7()
    writer = ChainWriter(session_id, SIGNER)
    start = ev.Start(
        0,
        "alice",
        "127.0.0.1:50000",
        "fwd",
        "127.0.0.1",
        22,
        "root",
        "gw-test",
        term,
        size[0] if term else 0,
        size[1] if term else 0,
        time.time_ns(),
    )
    end = ev.End(
        t=events[-1].t + 1,
        reason="closed by client",
        bytes_in=9,
        bytes_out=100,
        chunks=2,
        key=writer.public_key,
    )
    messages = [writer.encode([start, request]), writer.encode([*events, end])]
    now = dt.datetime.now(dt.UTC)
    received = [Received(decode_chunk(m), 0, i, now) for i, m in enumerate(messages)]
    engine = make_engine(url)
    StoreWriter(engine, dt.timedelta(hours=1)).write(received)
    engine.dispose()
    config = tmp_path / "sshtrail.toml"
    config.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n[database]\nurl = {toml_value(url)}\n"
    )
    return config, str(session_id)


def stored_forward(tmp_path: Path) -> tuple[Path, str]:
    """One recorded ``ssh -L`` connection."""
    opened = ev.Exec(t=1, mode="direct-tcpip", command=b"127.0.0.1:5432")
    carried: list[ev.Event] = [
        ev.Input(t=2, data=b"\x00\x00\x00\x09hi"),
        ev.Output(t=3, data=FORWARDED),
    ]
    return stored(tmp_path, opened, carried)


def test_replay_in_a_terminal_shows_the_session_but_nothing_answers_or_stays(
    tmp_path: Path,
) -> None:
    """Issue 14, defect 6: a session that asks the terminal where its cursor is, what it
    is, to take the clipboard or a title, or to switch input modes."""
    config, sid = stored(tmp_path, ev.Exec(1, "shell", b""), [ev.Output(2, HOSTILE)], term="xterm")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "sshtrail", "--config", str(config), "replay", sid[:8], "--speed", "100"],
        timeout=30,
    )
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before
    assert child.exitstatus == 0, shown
    assert b"hello" in shown
    assert b"world" in shown
    for forbidden in (b"\x1b[6n", b"\x1b[c", b"\x1b]52", b"pwned", b"\x1b[?1000h", b"\x1b[?2004h"):
        assert forbidden not in shown
    assert b"\x1b[?1049h" in shown  # drawing the screen is what replay is for ...
    assert shown.rindex(b"\x1b[?1049l") > shown.rindex(b"world")  # ... and it is undone
    raw = sshtrail(config, "replay", sid, "--raw")
    assert raw.stdout == HOSTILE  # byte-exact when asked for


def test_replay_warns_of_a_smaller_terminal_says_where_it_ended_and_refuses_a_late_start(
    tmp_path: Path,
) -> None:
    wide: list[ev.Event] = [ev.Output(2_000_000_000, b"a wide screen\r\n")]
    config, sid = stored(tmp_path, ev.Exec(1, "shell", b""), wide, term="xterm", size=(120, 40))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "sshtrail", "--config", str(config), "replay", sid, "--speed", "100"],
        timeout=30,
        dimensions=(24, 80),
    )
    child.expect("the recording is 120x40, this terminal 80x24: lines will wrap")
    child.expect("a wide screen")
    child.expect(r"sshtrail replay: ended 0:00:02 \(session ")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    late = sshtrail(config, "replay", sid, "--from", "99:00:00", check=False)
    assert late.returncode == 2
    assert b"--from 99:00:00 is after the end of the session, which lasts 0:00:02" in late.stderr


def test_replay_refuses_to_write_a_forwarded_connection_to_a_terminal(tmp_path: Path) -> None:
    config, sid = stored_forward(tmp_path)
    child = pexpect.spawn(
        sys.executable, ["-m", "sshtrail", "--config", str(config), "replay", sid[:8]], timeout=30
    )
    child.expect(pexpect.EOF)
    child.close()
    shown = child.before.replace(b"\r\n", b" ")
    assert child.exitstatus == 2, shown
    assert b"forwarded to 127.0.0.1:5432, not a terminal session" in shown
    assert f"sshtrail export {sid[:8]} --format raw".encode() in shown
    assert b"pwned" not in shown


def test_replay_into_a_pipe_gives_the_forwarded_bytes_as_they_were(tmp_path: Path) -> None:
    config, sid = stored_forward(tmp_path)
    done = sshtrail(config, "replay", sid)
    assert done.stdout == FORWARDED
