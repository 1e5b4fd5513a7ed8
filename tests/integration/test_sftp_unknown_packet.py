"""Issue 32, #8: a packet the SFTP parser does not know no longer blinds the transfer list.

The real OpenSSH ``sftp`` uploads two files through the real gateway to the
real ``sshd``; its ``ssh`` is ``tests/support/sftpinject.py``, which sends one
hand-built packet on the same channel once the first file is closed and
answered (so the gateway records it between the two uploads, as an operator's
own client could send it). The real store group reads the transfers; the real
CLI lists them and exports the first file.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumer.store import SESSIONS
from consumer.transfers import TRANSFERS
from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support import sftpinject
from tests.support import sftpwire as w
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

UNKNOWN_ID, BROKEN_ID = 0xFFFF0001, 0xFFFF0002
#: Type 250 (no such SFTP v3 request) with 20 bytes after its id: 25 bytes in all.
UNKNOWN = w.packet(250, w.u32(UNKNOWN_ID), b"\xff" * 20)
#: A REMOVE whose path is missing: no server can read past it; neither can sshtrail.
BROKEN = w.packet(13, w.u32(BROKEN_ID))


def test_an_unknown_packet_is_skipped_and_a_broken_stream_hides_nothing_before_it(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    first, second = os.urandom(70_000), os.urandom(5_000)
    (local / "first.bin").write_bytes(first)
    (local / "second.bin").write_bytes(second)
    batch = tmp_path / "batch"
    batch.write_text(
        f"put {local}/first.bin {remote}/first.bin\nput {local}/second.bin {remote}/second.bin\n"
    )
    wrapper = tmp_path / "ssh-injecting"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {sftpinject.__file__} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    try:
        for packet, ident in ((UNKNOWN, UNKNOWN_ID), (BROKEN, BROKEN_ID)):
            argv = gateway.file_client("sftp", "alice:t1", "-S", str(wrapper), "-b", "-")
            env = {**os.environ, "SFTPINJECT_PACKET": packet.hex(), "SFTPINJECT_ID": str(ident)}
            subprocess.run(
                [*argv, "127.0.0.1"], input=batch.read_bytes(), env=env, timeout=60, check=False
            )
    finally:
        gateway.stop()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    config = write_config(tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    config.write_text(config.read_text() + "[transfers]\ncontent_export = true\n")
    engine = make_engine(url)

    def read() -> bool:
        with engine.connect() as conn:
            waiting = select(func.count()).where(SESSIONS.c.transfers == "pending")
            ended = select(func.count()).where(SESSIONS.c.end_reason.is_not(None))
            return conn.execute(ended).scalar_one() == 2 and conn.execute(waiting).scalar_one() == 0

    member = start_member(config, "store")
    try:
        wait_for(read, what="both sessions stored and their transfers read", timeout=120)
    finally:
        member.stop(signal.SIGTERM)
    with engine.connect() as conn:
        sessions = conn.execute(
            select(SESSIONS.c.id, SESSIONS.c.transfers, SESSIONS.c.transfers_error).order_by(
                SESSIONS.c.started_at
            )
        ).all()
        rows = [
            conn.execute(
                select(TRANSFERS).where(TRANSFERS.c.session_id == sid).order_by(TRANSFERS.c.idx)
            )
            .mappings()
            .all()
            for sid, _state, _error in sessions
        ]
    engine.dispose()

    # The unknown packet: skipped and listed between the two uploads, both whole.
    (_, state, error), unknown = sessions[0], rows[0]
    assert (state, error) == ("done", None)
    looked = ("stat", "realpath")
    moved = [(r["op"], r["path"], r["status"]) for r in unknown if r["op"] not in looked]
    assert moved[0] == ("upload", f"{remote}/first.bin", "ok"), moved
    assert ("unknown", "", "unknown packet type 250, 25 bytes: skipped") in moved[1:], moved
    assert moved[-1] == ("upload", f"{remote}/second.bin", "ok"), moved
    assert unknown[-1]["sha256"] == hashlib.sha256(second).hexdigest()
    listing = sshtrail(config, "transfers", "--all", "--session", str(sessions[0][0]))
    listed = listing.stdout.decode()
    assert "unknown packet type 250, 25 bytes: skipped" in listed, listed
    assert "second.bin" in listed, listed

    # The broken stream: failed, saying why, and the first upload still listed and exportable.
    (broken_id, state, error), broken = sessions[1], rows[1]
    assert state == "failed"
    assert "a packet ends inside one of its fields" in (error or "")
    [upload] = [r for r in broken if r["op"] == "upload"]
    assert (upload["path"], upload["sha256"]) == (
        f"{remote}/first.bin",
        hashlib.sha256(first).hexdigest(),
    )
    shown = sshtrail(config, "show", str(broken_id))
    assert b"first.bin" in shown.stdout
    out = tmp_path / "exported"
    exported = sshtrail(config, "export", "--transfer", str(upload["id"]), "-o", str(out))
    assert out.read_bytes() == first
    assert b"Traceback" not in exported.stderr
