"""Issue 41: SFTP and SCP are found by what they are, however they were asked for.

Through the real gateway to the real ``sshd``: the real OpenSSH ``sftp`` with ``-s``
and the server's path (an ``exec``, not the ``sftp`` subsystem); the real ``scp -O``
whose ``ssh`` (``-S``) wraps the remote ``scp -t``/``-f`` in ``env``, a path or
``sh -c``; the scp sink protocol written by hand to ``$S -t DIR`` (a name no words
show); bytes that begin like SFTP and stop. The real store group reads them; the
real CLI lists each file with the SHA-256 of what was sent, and ``show`` says why
the cut one could not be read.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from consumer.store import SESSIONS
from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
#: ``ssh`` for ``scp -S``: the remote command (its last argument) through $SCP_WRAP.
WRAPPER = """#!/bin/bash
remote=$(printf "$SCP_WRAP" "${@: -1}")
exec ssh "${@:1:$#-1}" "$remote"
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_wrapped_and_renamed_transfers_are_read_and_a_cut_one_is_shown(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    if not SFTP_SERVER.exists():
        pytest.skip(f"no {SFTP_SERVER} on this machine")
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    content = {name: os.urandom(200_000) for name in ("sftp", "env", "sh", "bytes")}
    for name, data in content.items():
        (local / name).write_bytes(data)
    (remote / "down").write_bytes(content["env"][::-1])
    wrapper = tmp_path / "ssh-wrapping"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    batch = tmp_path / "batch"
    batch.write_text(f"put {local}/sftp {remote}/sftp\nget {remote}/sftp {local}/sftp-back\n")
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    done: list[str] = []

    def run(what: str, argv: list[str], stdin: bytes = b"", wrap: str = "") -> None:
        env = {**os.environ, "SCP_WRAP": wrap}
        finished = subprocess.run(
            argv, input=stdin, env=env, capture_output=True, timeout=120, check=False
        )
        assert finished.returncode == 0, (what, finished.stderr)
        done.append(what)

    scp = gateway.file_client("scp", "alice:t1", "-O", "-S", str(wrapper))
    try:
        sftp = ("-s", str(SFTP_SERVER), "-b", str(batch), "127.0.0.1")
        run("sftp -s", gateway.file_client("sftp", "alice:t1", *sftp))
        run("env scp -t", [*scp, str(local / "env"), f"127.0.0.1:{remote}/env"], wrap="env %s")
        run(
            "/usr/bin/scp -f",
            [*scp, f"127.0.0.1:{remote}/down", str(local / "down")],
            wrap="/usr/bin/%s",
        )
        run("sh -c scp -t", [*scp, str(local / "sh"), f"127.0.0.1:{remote}/sh"], wrap="sh -c '%s'")
        sink = b"C0644 200000 bytes\n" + content["bytes"] + b"\0"
        run("$S -t", gateway.ssh("alice:t1", f"S=scp; exec $S -t {remote}"), stdin=sink)
        run("cut sftp", gateway.ssh("alice:t1", "cat >/dev/null"), stdin=b"\0\0\0\x05\x01\0")
        run("cat", gateway.ssh("alice:t1", "cat"), stdin=b"hello\n")
    finally:
        gateway.stop()
    assert (remote / "bytes").read_bytes() == content["bytes"]  # the target took it

    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    config = write_config(tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    engine = make_engine(url)

    def read() -> bool:
        with engine.connect() as conn:
            waiting = select(func.count()).where(SESSIONS.c.transfers == "pending")
            ended = select(func.count()).where(SESSIONS.c.end_reason.is_not(None))
            return (
                conn.execute(ended).scalar_one() == len(done)
                and not conn.execute(waiting).scalar_one()
            )

    member = start_member(config, "store")
    try:
        wait_for(read, what="every session stored and its transfers read", timeout=120)
    finally:
        member.stop(signal.SIGTERM)
    with engine.connect() as conn:
        ids = list(conn.execute(select(SESSIONS.c.id).order_by(SESSIONS.c.started_at)).scalars())
    engine.dispose()
    sessions = dict(zip(done, ids, strict=True))

    def moved(what: str) -> list[tuple[str, str, int, str]]:
        listing = sshtrail(config, "transfers", "--session", str(sessions[what]), "--json")
        return [
            (row["op"], row["path"], row["size"], row["sha256"])
            for row in json.loads(listing.stdout)
            if row["op"] in ("upload", "download")
        ]

    sent = content["sftp"]
    assert moved("sftp -s") == [
        ("upload", f"{remote}/sftp", len(sent), sha(sent)),
        ("download", f"{remote}/sftp", len(sent), sha(sent)),
    ]
    assert moved("env scp -t") == [("upload", f"{remote}/env", 200_000, sha(content["env"]))]
    back = (local / "down").read_bytes()
    assert moved("/usr/bin/scp -f") == [("download", f"{remote}/down", 200_000, sha(back))]
    assert moved("sh -c scp -t") == [("upload", f"{remote}/sh", 200_000, sha(content["sh"]))]
    assert moved("$S -t") == [("upload", f"{remote}/bytes", 200_000, sha(content["bytes"]))]

    shown = sshtrail(config, "show", str(sessions["cut sftp"])).stdout.decode()
    assert (
        "read up to a problem: its bytes look like SFTP, but the session ended inside its "
        "INIT packet"
    ) in shown, shown
    assert "transfers" not in sshtrail(config, "show", str(sessions["cat"])).stdout.decode()
