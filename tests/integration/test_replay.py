"""``sshtrail replay`` of a forwarded connection: its bytes never reach a terminal."""

from __future__ import annotations

import datetime as dt
import subprocess
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
from tests.support.gateway import toml_value
from tests.support.recordings import SIGNER

pytestmark = pytest.mark.integration

#: What a forwarded connection to a PostgreSQL server might carry back: not
#: terminal output, and here with a sequence that would retitle the window.
FORWARDED = b"R\x00\x00\x00\x08\x00\x00\x00\x00\x1b]0;pwned\x07Z"


def stored_forward(tmp_path: Path) -> tuple[Path, str]:
    """A settings file over a SQLite store holding one recorded ``ssh -L`` connection."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    session_id = uuid7()
    writer = ChainWriter(session_id, SIGNER)
    start = ev.Start(
        t=0,
        operator="alice",
        client="127.0.0.1:50000",
        target="fwd",
        host="127.0.0.1",
        port=22,
        user="root",
        gateway="gw-test",
        term="",
        cols=0,
        rows=0,
        started_at=time.time_ns(),
    )
    end = ev.End(
        t=4,
        reason="closed by client",
        bytes_in=9,
        bytes_out=len(FORWARDED),
        chunks=2,
        key=writer.public_key,
    )
    opened = ev.Exec(t=1, mode="direct-tcpip", command=b"127.0.0.1:5432")
    carried: list[ev.Event] = [
        ev.Input(t=2, data=b"\x00\x00\x00\x09hi"),
        ev.Output(t=3, data=FORWARDED),
    ]
    messages = [writer.encode([start, opened]), writer.encode([*carried, end])]
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
    done = subprocess.run(
        [sys.executable, "-m", "sshtrail", "--config", str(config), "replay", sid],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == FORWARDED
