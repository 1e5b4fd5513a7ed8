"""Sessions recorded through a real gateway, then stored and indexed, and the CLI over them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pexpect
from sqlalchemy import func, select

from consumer.store import SESSIONS
from sshtrail import migrate, search
from sshtrail.db import make_engine
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, toml_table
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

HOSTILE = "echo '\x1b]0;pwned\x07\x1b[2J' >/dev/null; echo hostile"


def store_and_index(config: Path, store_url: str, search_url: str, sessions: int) -> None:
    """Run a store and an index member until ``sessions`` sessions are closed in the
    store and ended in the index, then stop them."""
    members = [start_member(config, "store"), start_member(config, "index")]
    store, index = make_engine(store_url), make_engine(search_url)

    def done() -> bool:
        with store.connect() as conn:
            closed = conn.execute(
                select(func.count()).where(SESSIONS.c.status == "closed")
            ).scalar_one()
        try:
            with index.connect() as conn:
                ended = conn.execute(
                    select(func.count()).where(search.SESSIONS.c.ended)
                ).scalar_one()
        except Exception:
            ended = 0  # the index member has not made its tables yet
        return closed == sessions and ended == sessions

    try:
        wait_for(done, what=f"{sessions} sessions stored and indexed")
    finally:
        for member in members:
            member.stop(signal.SIGTERM)
        store.dispose()
        index.dispose()


class Recorded:
    """Three sessions through a gateway, stored and indexed, and the CLI over them."""

    def __init__(self, root: Path, broker: Broker, sshd: SshdTarget, settings: str = "") -> None:
        """The gateway started, and the settings the members, the CLI and the console
        share (``settings``: more tables, such as ``[web]`` and ``[[auditors]]``)."""
        self.root = root
        self.gateway = GatewayProcess(
            root / "gw", broker.bootstrap_servers, sshd, dead_letters=True
        )
        self.gateway.start()
        self.store_url = f"sqlite:///{root / 'store.db'}"
        self.search_url = f"sqlite:///{root / 's.db'}"
        config = write_config(
            root / "sshtrail.toml", broker.bootstrap_servers, self.gateway.topic, self.store_url
        )
        key = root / "gw" / "state" / "gateway" / "recording_ed25519_key"
        config.write_text(
            config.read_text()
            + toml_table("[search]", url=self.search_url)
            + toml_table("[gateway]", signing_key=str(key))
            + settings
        )
        self.config = config

    def stored(self, sessions: int) -> None:
        """Store and index what the gateway recorded, ``sessions`` sessions, then stop
        the gateway: the sessions are all there is to read."""
        migrate.upgrade(self.store_url)
        store_and_index(self.config, self.store_url, self.search_url, sessions=sessions)
        self.gateway.stop()

    def record(self) -> None:
        for command in ("echo audit-$((6*7)); exit 3", HOSTILE):
            subprocess.run(
                self.gateway.ssh("alice:t1", command), capture_output=True, timeout=30, check=False
            )
        argv = self.gateway.ssh("alice:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.sendline("echo typed-line-$((2+3))")
        child.expect("typed-line-5")
        child.sendline("exit")
        child.expect(pexpect.EOF)
        self.stored(sessions=3)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return sshtrail(self.config, *argv, check=check)
