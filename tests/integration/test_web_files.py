"""A session page of an SFTP session and of a forwarded connection, and a transferred
file downloaded from the console: a real ``sftp`` and a real forwarded connection
through the real gateway, stored and read by the real store group (SQLite and
PostgreSQL), the console over that store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socketserver
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from consumer.web.app import create_app
from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.passwords import hash_password
from sshtrail.settings import load_settings
from sshtrail.tables import ACCESS_LOG, SESSIONS, TRANSFERS
from tests.support import postgres
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.services import unavailable
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

PASSWORD = "a-long-password"
#: What the forwarded connection carried: a NUL, an escape that would retitle a
#: terminal, markup, and enough to need a second page of 4096 bytes.
TOWARDS = b"\x00\x1b]0;pwned\x07<b>hi</b>" + bytes(range(256)) * 20
STATE_DIR = tempfile.mkdtemp(prefix="sshtrail-web-files-")


@dataclass
class Recorded:
    config: Path
    url: str
    sftp: uuid.UUID
    forward: uuid.UUID
    uploaded: bytes


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


async def _forward(gateway: GatewayProcess, port: int) -> bytes:
    async with gateway.connect("alice:fwd") as conn:
        reader, writer = await conn.open_connection("127.0.0.1", port)
        writer.write(TOWARDS)
        got: bytes = await asyncio.wait_for(reader.readexactly(len(TOWARDS)), 20)
        writer.close()
        return got


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def recorded(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    broker: Broker,
    sshd: SshdTarget,
) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("web-files")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'store.db'}"
    else:
        try:
            url = postgres.create_database()
        except psycopg.OperationalError as exc:
            unavailable(f"PostgreSQL at {postgres.ADMIN_URL} is not available: {exc}")
    remote = root / "remote"
    remote.mkdir()
    uploaded = os.urandom(150_000) + b"\r\n\x00"
    (root / "up.bin").write_bytes(uploaded)
    gateway = GatewayProcess(root / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    batch = root / "batch"
    batch.write_text(f"cd {remote}\nmkdir d\nput {root}/up.bin d/up.bin\nrename d/up.bin d/x.bin\n")
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        argv = gateway.file_client("sftp", "alice:t1", "-b", str(batch), "127.0.0.1")
        done = subprocess.run(argv, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert asyncio.run(_forward(gateway, server.server_address[1])) == TOWARDS
    finally:
        server.shutdown()
        server.server_close()
        gateway.stop()
    migrate.upgrade(url)
    config = write_config(root / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, url)
    engine = make_engine(url)

    def both_read() -> bool:
        with engine.connect() as conn:
            ended = conn.execute(
                select(func.count()).where(SESSIONS.c.end_reason.is_not(None))
            ).scalar_one()
            waiting = conn.execute(
                select(func.count()).where(SESSIONS.c.transfers == "pending")
            ).scalar_one()
        return ended == 2 and waiting == 0

    member = start_member(config, "store")
    try:
        wait_for(both_read, what="both sessions stored and the transfers read", timeout=120)
    finally:
        member.stop(signal.SIGTERM)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(SESSIONS.c.request, SESSIONS.c.id)).all())
    engine.dispose()
    yield Recorded(config, url, ids["subsystem"], ids["direct-tcpip"], uploaded)
    if request.param == "postgresql":
        postgres.drop_database(url)


def console(recorded: Recorded, export: bool) -> TestClient:
    """The console over the recorded store: ``ann`` may export files, ``tom`` may not;
    the export switch ``export``."""
    hashed = hash_password(PASSWORD)
    extra = recorded.config.with_name(f"web-{export}.toml")
    extra.write_text(
        recorded.config.read_text()
        + f"[transfers]\ncontent_export = {'true' if export else 'false'}\n"
        + f'[[auditors]]\nname = "ann"\npassword_hash = "{hashed}"\nexport_files = true\n'
        + f'[[auditors]]\nname = "tom"\npassword_hash = "{hashed}"\n'
    )
    settings = load_settings(extra, {"SSHTRAIL_STATE_DIR": STATE_DIR})
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


def sign_in(client: TestClient, name: str) -> None:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    answer = client.post(
        "/login",
        data={"name": name, "password": PASSWORD, "csrf": found[1], "next": "/sessions"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def logged(recorded: Recorded, action: str) -> list[str]:
    engine = make_engine(recorded.url)
    try:
        with engine.connect() as conn:
            query = select(ACCESS_LOG.c.detail).where(ACCESS_LOG.c.action == action)
            return list(conn.execute(query).scalars())
    finally:
        engine.dispose()


def upload_index(recorded: Recorded) -> int:
    engine = make_engine(recorded.url)
    try:
        with engine.connect() as conn:
            query = select(TRANSFERS.c.idx).where(
                TRANSFERS.c.session_id == recorded.sftp, TRANSFERS.c.op == "upload"
            )
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_an_sftp_session_shows_its_operations_and_files_not_a_player(recorded: Recorded) -> None:
    with console(recorded, export=True) as client:
        sign_in(client, "ann")
        page = client.get(f"/sessions/{recorded.sftp.hex}")
    assert page.status_code == 200, page.text
    text = page.text
    assert 'id="player"' not in text
    ops = re.findall(r'<tr data-op="([a-z-]+)">', text)
    assert [op for op in ops if op in ("mkdir", "upload", "rename")] == [
        "mkdir",
        "upload",
        "rename",
    ]
    assert "d/up.bin" in text
    assert "d/x.bin" in text
    files = text[text.index('id="files"') :]
    digest = hashlib.sha256(recorded.uploaded).hexdigest()
    assert digest in files
    assert "to the target" in files
    assert str(len(recorded.uploaded)) in files
    index = upload_index(recorded)
    assert f'href="/sessions/{recorded.sftp.hex}/files/{index}"' in files


def test_a_file_downloads_byte_exact_and_is_logged(recorded: Recorded) -> None:
    index = upload_index(recorded)
    with console(recorded, export=True) as client:
        sign_in(client, "ann")
        got = client.get(f"/sessions/{recorded.sftp.hex}/files/{index}")
    assert got.status_code == 200, got.text
    assert got.content == recorded.uploaded
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"] == 'attachment; filename="up.bin"'
    assert any(detail.endswith("/d/up.bin") for detail in logged(recorded, "export-file"))


def test_without_the_right_or_with_export_off_there_is_no_link_and_a_403(
    recorded: Recorded,
) -> None:
    index = upload_index(recorded)
    path = f"/sessions/{recorded.sftp.hex}/files/{index}"
    for export, name in ((True, "tom"), (False, "ann")):
        with console(recorded, export=export) as client:
            sign_in(client, name)
            page = client.get(f"/sessions/{recorded.sftp.hex}")
            assert page.status_code == 200
            assert "/files/" not in page.text
            assert hashlib.sha256(recorded.uploaded).hexdigest() in page.text
            refused = client.get(path)
            assert refused.status_code == 403, (export, name)
            assert refused.content != recorded.uploaded
    assert any(detail == f"file {index}" for detail in logged(recorded, "denied"))


def test_bad_file_numbers_are_400_and_missing_ones_404(recorded: Recorded) -> None:
    base = f"/sessions/{recorded.sftp.hex}/files/"
    engine = make_engine(recorded.url)
    with engine.connect() as conn:
        [rename] = conn.execute(
            select(TRANSFERS.c.idx).where(
                TRANSFERS.c.session_id == recorded.sftp, TRANSFERS.c.op == "rename"
            )
        ).scalars()
    engine.dispose()
    with console(recorded, export=True) as client:
        sign_in(client, "ann")
        for bad in ("x", "-1", "1.0", "9" * 30, "%00", "0x1"):
            assert client.get(base + bad).status_code == 400, bad
        for missing in ("999999", str(rename)):
            answer = client.get(base + missing)
            assert answer.status_code == 404, missing
        # a file of another session is not found under this one's path
        upload = upload_index(recorded)
        other = client.get(f"/sessions/{recorded.forward.hex}/files/{upload}")
        assert other.status_code == 404
        assert client.get(f"/sessions/{uuid.uuid4().hex}/files/{upload}").status_code == 404


def test_a_forwarded_connection_shows_its_bytes_as_hex_in_pages(recorded: Recorded) -> None:
    with console(recorded, export=True) as client:
        sign_in(client, "tom")
        first = client.get(f"/sessions/{recorded.forward.hex}")
        second = client.get(f"/sessions/{recorded.forward.hex}?bytes=2")
        third = client.get(f"/sessions/{recorded.forward.hex}?bytes=3")
        far = client.get(f"/sessions/{recorded.forward.hex}?bytes=999")
        silly = client.get(f"/sessions/{recorded.forward.hex}?bytes=abc")
    assert first.status_code == 200, first.text
    text = first.text
    assert 'id="player"' not in text
    assert 'id="hexdump"' in text
    assert "00 1b 5d 30 3b 70 77 6e 65 64 07 3c 62 3e 68 69" in text
    assert "..]0;pwned.&lt;b&gt;hi" in text  # the escape a dot, the markup escaped
    assert "<b>hi</b>" not in text
    assert "\x1b" not in text
    assert "<td>to destination</td>" in text
    # 10 KB crossed in all, half of it each way: the echo is on the first three pages
    assert any("<td>back</td>" in p.text for p in (first, second, third))
    assert 'id="bytes-next"' in text
    assert 'id="bytes-previous"' not in text
    assert second.status_code == 200
    assert 'id="bytes-previous"' in second.text
    assert 'id="no-bytes"' in far.text
    assert silly.status_code == 200
    assert 'id="hexdump"' in silly.text
