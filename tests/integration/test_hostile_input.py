"""What an operator can put into a session cannot stall the store or the index (issue 14).

Through the real gateway to a real sshd (and an asyncssh target for what
sshd never sends), with a store and an index member running on SQLite and
on PostgreSQL: NUL bytes in the command, the TERM, an environment value and
a subsystem name; exit statuses beyond 2**31; signal names with odd bytes.
Each is stored faithfully, and the ordinary session that follows is listed
within seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import Engine, select

from sshtrail import events as ev
from sshtrail.models import SessionRecord
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, toml_value
from tests.support.kafka import Broker
from tests.support.oddtarget import OddTarget
from tests.support.recordings import events_session, keyed, produce
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

SESSIONS = SessionRecord.__table__


@pytest.fixture
def odd(tmp_path: Path, sshd: SshdTarget) -> Iterator[OddTarget]:
    with OddTarget(tmp_path / "odd", sshd.client_key.with_suffix(".pub")) as target:
        yield target


@pytest.fixture
def gateway(
    tmp_path: Path, broker: Broker, sshd: SshdTarget, odd: OddTarget
) -> Iterator[GatewayProcess]:
    tail = f"""
[[targets]]
name = "odd"
host = "127.0.0.1"
port = {odd.port}
user = "anyone"
key = {toml_value(str(sshd.client_key))}
host_keys = [{toml_value(odd.host_public_line)}]
accept_env = ["LC_*"]
"""
    process = GatewayProcess(
        tmp_path / "gw",
        broker.bootstrap_servers,
        sshd,
        dead_letters=True,
        config_tail=tail,
        alice_targets=["odd"],
    )
    process.start()
    yield process
    process.stop()


async def _hostile(gateway: GatewayProcess, mark: str) -> dict[str, asyncssh.SSHCompletedProcess]:
    results = {}

    async def connect(target: str) -> asyncssh.SSHClientConnection:
        return await gateway.connect(f"alice:{target}")

    async with await connect("t1") as conn:
        results["nul command"] = await asyncio.wait_for(
            conn.run(f"echo {mark}-a\x00b", check=False), 20
        )
        results["nul term"] = await asyncio.wait_for(
            conn.run(f"echo {mark}-term", term_type="xterm\x00evil", check=False), 20
        )
        results["nul env"] = await asyncio.wait_for(
            conn.run(f"echo {mark}-env", env={"LC_EVIL": "a\x00b"}, check=False), 20
        )
        results["nul subsystem"] = await asyncio.wait_for(
            conn.run(subsystem="sftp\x00evil", check=False), 20
        )
    async with await connect("odd") as conn:
        for status in (2**31, 2**32 - 1):
            results[f"status {status}"] = await asyncio.wait_for(
                conn.run(f"exit-status {status}", check=False), 20
            )
        results["odd signal"] = await asyncio.wait_for(
            conn.run("exit-signal K\x00ILL\x7f\x1b[2J", check=False), 20
        )
    async with await connect("odd") as conn:  # a signal name SSH itself does not allow
        results["bad signal"] = await asyncio.wait_for(
            conn.run("exit-signal K\u2400ILL", check=False), 20
        )
    return results


def test_hostile_sessions_are_stored_faithfully_and_stop_no_one(
    tmp_path: Path, broker: Broker, gateway: GatewayProcess, store_engine: Engine
) -> None:
    database_url = str(store_engine.url.render_as_string(hide_password=False))
    config = write_config(
        tmp_path / "sshtrail.toml", broker.bootstrap_servers, gateway.topic, database_url
    )
    members = [start_member(config, "store"), start_member(config, "index")]
    try:
        mark = uuid.uuid4().hex[:8]
        # Every hostile request gets its answer (each within _hostile's bound: one once
        # hung for ~20 s, and would now fail there).
        results = asyncio.run(_hostile(gateway, mark))
        # SSH clients (asyncssh, as the gateway's side towards targets) keep 8 bits of
        # an exit status; a status beyond them reaches the store only in a chunk
        # written by something else than this gateway -- sent straight to the topic.
        assert results["status 4294967295"].exit_status == 255
        produce(broker.bootstrap_servers, gateway.topic, keyed(*_exited(2**32 - 1)))
        produce(broker.bootstrap_servers, gateway.topic, keyed(*_exited(2**31)))

        ordinary = asyncio.run(_ordinary(gateway, mark))
        assert ordinary.stdout == f"ordinary-{mark}\n".encode()

        def listed() -> bool:
            with store_engine.connect() as conn:
                rows = conn.execute(select(SESSIONS.c.command).where(SESSIONS.c.status == "closed"))
                return any(f"ordinary-{mark}" in (command or "") for (command,) in rows)

        wait_for(listed, timeout=30, what="the ordinary session after the hostile ones")
        with store_engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(SESSIONS))]
    finally:
        for member in members:
            member.stop()
    by_command = {row["command"]: row for row in rows if row["command"]}
    assert f"echo {mark}-a\x00b" in by_command  # NUL kept, not dropped
    assert by_command[f"echo {mark}-term"]["term"] == "xterm\x00evil"
    assert "sftp\x00evil" in by_command
    statuses = {row["exit_status"] for row in rows}
    assert {2**31, 2**32 - 1} <= statuses
    assert "K\x00ILL\x7f\x1b[2J" in {row["exit_signal"] for row in rows}
    refused_signal = by_command["exit-signal K\u2400ILL"]
    assert refused_signal["end_reason"].startswith("target closed the channel")
    assert all(row["status"] in ("closed", "refused") for row in rows), [
        (row["command"], row["status"], row["quarantine_reason"]) for row in rows
    ]


def _exited(status: int) -> tuple[uuid.UUID, list[bytes]]:
    return events_session([[ev.Output(1, b"bye\r\n"), ev.Exit(2, status=status)]])


async def _ordinary(gateway: GatewayProcess, mark: str) -> asyncssh.SSHCompletedProcess:
    async with gateway.connect() as conn:
        return await conn.run(f"echo ordinary-{mark}", check=False, encoding=None)
