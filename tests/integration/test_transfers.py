"""File transfers with the real OpenSSH ``sftp`` and ``scp`` through the real gateway to
the real ``sshd``, read back by the store group into ``transfers``, and the CLI on them.

The target is this machine, so the "remote" files are files here too: every
whole file's SHA-256 is checked against both ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from sqlalchemy import Engine, func, select

from consumer.store import SESSIONS
from consumer.transfers import TRANSFERS
from sshtrail import migrate
from sshtrail.db import make_engine
from tests.support import postgres
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.services import unavailable
from tests.support.shapes import Transfer
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Transferred:
    gateway: GatewayProcess
    config: Path
    engine: Engine
    local: Path
    remote: Path
    sessions: dict[str, uuid.UUID]  # what was done -> its session

    def operations(self, what: str) -> list[dict[str, Any]]:
        query = (
            select(TRANSFERS)
            .where(TRANSFERS.c.session_id == self.sessions[what])
            .order_by(TRANSFERS.c.idx)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def changes(self, what: str) -> list[tuple[str, str, str]]:
        """(op, path relative to the remote folder, status) of what changed files."""
        looked = {"stat", "realpath", "list", "readlink", "statvfs"}
        return [
            (row["op"], os.path.relpath(row["path"], self.remote), row["status"])
            for row in self.operations(what)
            if row["op"] not in looked
        ]


def _files(local: Path) -> None:
    (local / "a.bin").write_bytes(os.urandom(300_000))
    tree = local / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "x.txt").write_bytes(b"x" * 70_000)
    (tree / "sub" / "y.bin").write_bytes(os.urandom(5))
    (tree / "sub" / "empty").write_bytes(b"")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def transferred(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    broker: Broker,
    sshd: SshdTarget,
) -> Iterator[Transferred]:
    root = tmp_path_factory.mktemp("transfers")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'store.db'}"
    else:
        try:
            url = postgres.create_database()
        except psycopg.OperationalError as exc:
            unavailable(f"PostgreSQL at {postgres.ADMIN_URL} is not available: {exc}")
    local, remote = root / "local", root / "remote"
    local.mkdir()
    (remote / "legacy").mkdir(parents=True)
    _files(local)
    gateway = GatewayProcess(root / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    batch = root / "batch"
    batch.write_text(
        f"cd {remote}\n"
        "mkdir d1\n"
        f"put {local}/a.bin d1/a.bin\n"
        "rename d1/a.bin d1/b.bin\n"
        "chmod 600 d1/b.bin\n"
        "ls d1\n"
        f"get d1/b.bin {local}/back.bin\n"
        "symlink d1/b.bin link\n"
        "rm link\n"
        "rm d1/b.bin\n"
        "rmdir d1\n"
    )
    done: list[str] = []

    def run(what: str, argv: list[str], ok: bool = True) -> None:
        finished = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        assert (finished.returncode == 0) == ok, (what, finished.stderr)
        done.append(what)

    client = gateway.file_client
    run("sftp", client("sftp", "alice:t1", "-b", str(batch), "127.0.0.1"))
    run("scp", client("scp", "alice:t1", str(local / "a.bin"), f"127.0.0.1:{remote}/scp-a.bin"))
    run("scp -r", client("scp", "alice:t1", "-r", str(local / "tree"), f"127.0.0.1:{remote}/st"))
    legacy = f"127.0.0.1:{remote}/legacy/"
    run("scp -O -r -p", client("scp", "alice:t1", "-O", "-r", "-p", str(local / "tree"), legacy))
    run(
        "scp -O from",
        client("scp", "alice:t1", "-O", f"{legacy}tree/x.txt", str(local / "x-back.txt")),
    )
    run(
        "scp -O -r from",
        client("scp", "alice:t1", "-O", "-r", f"{legacy}tree", str(local / "tree-back")),
    )
    run("no such subsystem", gateway.ssh("alice:t1", "-s", "nosuch"), ok=False)
    gateway.stop()

    migrate.upgrade(url)
    config = write_config(root / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    config.write_text(config.read_text() + "[transfers]\ncontent_export = true\n")
    engine = make_engine(url)

    def all_read() -> bool:
        with engine.connect() as conn:
            ended = conn.execute(
                select(func.count()).where(SESSIONS.c.end_reason.is_not(None))
            ).scalar_one()
            waiting = conn.execute(
                select(func.count()).where(SESSIONS.c.transfers == "pending")
            ).scalar_one()
        return ended == len(done) and waiting == 0

    member = start_member(config, "store")
    try:
        wait_for(all_read, what="every session stored and its transfers read", timeout=120)
    finally:
        member.stop(signal.SIGTERM)
    with engine.connect() as conn:
        ids = list(conn.execute(select(SESSIONS.c.id).order_by(SESSIONS.c.started_at)).scalars())
    yield Transferred(gateway, config, engine, local, remote, dict(zip(done, ids, strict=True)))
    engine.dispose()
    if request.param == "postgresql":
        postgres.drop_database(url)


def test_sftp_operations_in_order_with_paths_answers_and_hashes(transferred: Transferred) -> None:
    t = transferred
    assert t.changes("sftp") == [
        ("mkdir", "d1", "ok"),
        ("upload", "d1/a.bin", "ok"),
        ("rename", "d1/a.bin", "ok"),
        ("setstat", "d1/b.bin", "ok"),
        ("download", "d1/b.bin", "ok"),
        ("symlink", "link", "ok"),
        ("remove", "link", "ok"),
        ("remove", "d1/b.bin", "ok"),
        ("rmdir", "d1", "ok"),
    ]
    operations = {row["op"]: row for row in t.operations("sftp")}
    whole = sha(t.local / "a.bin")
    assert whole == sha(t.local / "back.bin")
    assert (operations["upload"]["size"], operations["upload"]["sha256"]) == (300_000, whole)
    assert (operations["download"]["size"], operations["download"]["sha256"]) == (300_000, whole)
    assert operations["rename"]["path2"] == str(t.remote / "d1" / "b.bin")
    assert operations["setstat"]["detail"] == {"mode": "0600"}
    assert operations["symlink"]["path2"] == "d1/b.bin"
    assert operations["list"]["path"].rstrip("/") == str(t.remote / "d1")
    assert operations["stat"]["status"] in ("ok", "no such file: No such file")


def test_scp_in_sftp_mode_and_legacy_mode_with_every_file_hashed(
    transferred: Transferred,
) -> None:
    t = transferred
    [upload] = [row for row in t.operations("scp") if row["op"] == "upload"]
    assert (upload["path"], upload["sha256"]) == (
        str(t.remote / "scp-a.bin"),
        sha(t.remote / "scp-a.bin"),
    )
    sent = {"tree/x.txt", "tree/sub/y.bin", "tree/sub/empty"}
    for what, folder in (("scp -r", "st"), ("scp -O -r -p", "legacy/tree")):
        uploads = {
            os.path.relpath(row["path"], t.remote / folder): row
            for row in t.operations(what)
            if row["op"] == "upload"
        }
        assert set(uploads) == {name.removeprefix("tree/") for name in sent}, what
        for name, row in uploads.items():
            here = t.remote / folder / name
            assert (row["size"], row["sha256"]) == (here.stat().st_size, sha(here)), name
            assert row["sha256"] == sha(t.local / "tree" / name)
    legacy = t.operations("scp -O -r -p")
    assert [row["op"] for row in legacy if row["op"] == "mkdir"] == ["mkdir", "mkdir"]
    assert all(row["detail"].get("mtime") for row in legacy)  # -p sends the times
    [download] = t.operations("scp -O from")
    assert download["op"] == "download"
    assert download["sha256"] == sha(t.local / "x-back.txt") == sha(t.local / "tree" / "x.txt")
    back = {row["path"]: row for row in t.operations("scp -O -r from") if row["op"] == "download"}
    assert len(back) == 3
    for path, row in back.items():
        assert row["sha256"] == sha(Path(path)), path


def test_a_failed_subsystem_request_is_recorded_as_such(transferred: Transferred) -> None:
    with transferred.engine.connect() as conn:
        reason = conn.execute(
            select(SESSIONS.c.end_reason).where(
                SESSIONS.c.id == transferred.sessions["no such subsystem"]
            )
        ).scalar_one()
    assert reason.startswith("target refused the subsystem nosuch")


def test_auditors_find_transfers_with_the_cli(transferred: Transferred) -> None:
    t = transferred
    listed = json.loads(sshtrail(t.config, "transfers", "--path", "*/b.bin", "--json").stdout)
    assert {row["op"] for row in listed} >= {"download", "setstat", "remove"}
    assert all(row["session"] == str(t.sessions["sftp"]) for row in listed)
    table = sshtrail(t.config, "transfers", "--operator", "alice").stdout.decode()
    assert "scp-a.bin" in table
    assert sha(t.local / "a.bin")[:16] in table
    found = json.loads(sshtrail(t.config, "search", "scp-a", "--kind", "transfer", "--json").stdout)
    assert {hit["kind"] for hit in found} == {"transfer"}
    assert f"upload {t.remote}/scp-a.bin" in [hit["text"] for hit in found]
    assert all(hit["session"] == str(t.sessions["scp"]) for hit in found)
    shown = sshtrail(t.config, "show", str(t.sessions["sftp"])).stdout.decode()
    assert "upload" in shown
    assert sha(t.local / "a.bin") in shown
    document = json.loads(sshtrail(t.config, "show", str(t.sessions["sftp"]), "--json").stdout)
    for listed_row in listed:  # the documented shape (docs/operations.md), as test_json_shapes
        decoded = msgspec.json.decode(json.dumps(listed_row), type=Transfer, strict=True)
        assert decoded.session == t.sessions["sftp"]
    assert document["transfers_read"] == "done"
    assert [row["op"] for row in document["transfers"]][:2] == ["realpath", "realpath"]
    nothing = sshtrail(t.config, "transfers", "--path", "/nowhere/*", check=False)
    assert nothing.returncode == 0
    assert b"no transfers match" in nothing.stderr


@pytest.mark.slow
def test_a_200_megabyte_file_both_ways(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    big = local / "big.bin"
    with big.open("wb") as out:
        for _ in range(200):
            out.write(os.urandom(1 << 20))
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    gateway.start()
    try:
        for argv in (
            gateway.file_client("scp", "alice:t1", str(big), f"127.0.0.1:{remote}/big.bin"),
            gateway.file_client(
                "scp", "alice:t1", f"127.0.0.1:{remote}/big.bin", str(local / "back")
            ),
        ):
            subprocess.run(argv, capture_output=True, timeout=300, check=True)
    finally:
        gateway.stop()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    config = write_config(tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    engine = make_engine(url)
    member = start_member(config, "store")
    try:

        def read() -> bool:
            with engine.connect() as conn:
                return (
                    conn.execute(
                        select(func.count()).where(SESSIONS.c.transfers == "done")
                    ).scalar_one()
                    == 2
                )

        wait_for(read, what="both sessions' transfers read", timeout=240)
        with engine.connect() as conn:
            moved = conn.execute(
                select(TRANSFERS.c.op, TRANSFERS.c.size, TRANSFERS.c.sha256).where(
                    TRANSFERS.c.op.in_(["upload", "download"])
                )
            ).all()
    finally:
        member.stop(signal.SIGTERM)
        engine.dispose()
    whole = sha(big)
    assert whole == sha(remote / "big.bin") == sha(local / "back")
    assert sorted(tuple(row) for row in moved) == [
        ("download", 200 << 20, whole),
        ("upload", 200 << 20, whole),
    ]


def test_a_transferred_file_is_exported_from_the_recording(
    transferred: Transferred, tmp_path: Path
) -> None:
    t = transferred
    for what, op, original in (
        ("sftp", "upload", t.local / "a.bin"),
        ("sftp", "download", t.local / "back.bin"),
        ("scp -O -r -p", "upload", t.local / "tree" / "x.txt"),
    ):
        [row] = [
            r for r in t.operations(what) if r["op"] == op and r["size"] == original.stat().st_size
        ]
        out = tmp_path / f"{row['id']}.out"
        done = sshtrail(t.config, "export", "--transfer", str(row["id"]), "-o", str(out))
        assert sha(out) == sha(original) == row["sha256"], what
        assert f"sha256 {row['sha256']}" in done.stderr.decode()
    piped = sshtrail(t.config, "export", "--transfer", str(row["id"]))
    assert piped.stdout == original.read_bytes()
    [rename] = [r for r in t.operations("sftp") if r["op"] == "rename"]
    refused = sshtrail(t.config, "export", "--transfer", str(rename["id"]), check=False)
    assert refused.returncode == 3
    assert b"is a rename: no file's bytes moved" in refused.stderr
    missing = sshtrail(t.config, "export", "--transfer", "999999", check=False)
    assert b"no transfer 999999" in missing.stderr
    off = t.config.with_name("off.toml")
    off.write_text(t.config.read_text().replace("content_export = true", "content_export = false"))
    closed = sshtrail(off, "export", "--transfer", str(row["id"]), check=False)
    assert closed.returncode == 2
    assert b"transfers.content_export = true" in closed.stderr
