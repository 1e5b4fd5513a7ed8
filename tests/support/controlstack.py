"""Two real gateways sharing the sessions and control topics, a real store member, and
the settings an auditor's commands use (``terminate``, ``lock``, ``review``)."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pexpect
from sqlalchemy import select

from sshtrail import control, migrate
from sshtrail.db import make_engine
from sshtrail.keyfiles import public_line
from sshtrail.tables import SESSIONS
from tests.support.cli import Running, sshtrail
from tests.support.consumers import start_member, write_config
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for


class Stack:
    """Two gateways sharing the sessions and control topics, a store member, and the
    settings an auditor's commands use."""

    def __init__(
        self,
        root: Path,
        broker: Broker,
        sshd: SshdTarget,
        gateway_tail: str = "",
        gateway_extra: str = "",
        **consumer: object,
    ) -> None:
        """``gateway_tail``: tables added to both gateways' settings; ``gateway_extra``:
        keys added to their ``[gateway]``; ``consumer``: keys of the store member's
        ``[consumer]``."""
        self.root = root
        self.one = GatewayProcess(
            root / "gw1",
            broker.bootstrap_servers,
            sshd,
            dead_letters=True,
            instance="gw-one",
            extra=gateway_extra,
            config_tail=gateway_tail,
        )
        self.two = GatewayProcess(
            root / "gw2",
            broker.bootstrap_servers,
            sshd,
            topic=self.one.topic,
            control_topic=self.one.control_topic,
            instance="gw-two",
            extra=gateway_extra,
            config_tail=gateway_tail,
        )
        self.servers = broker.bootstrap_servers
        self.store_url = f"sqlite:///{root / 'store.db'}"
        migrate.upgrade(self.store_url)
        self.config = write_config(
            root / "sshtrail.toml",
            broker.bootstrap_servers,
            self.one.topic,
            self.store_url,
            None,  # no search index
            **consumer,
        )
        signer = self.one.workdir / "state" / "gateway" / "recording_ed25519_key"
        signer2 = self.two.workdir / "state" / "gateway" / "recording_ed25519_key"
        self.config.write_text(
            self.config.read_text()
            + f'[control]\ntopic = "{self.one.control_topic}"\n'
            + f'signing_key = "{self.one.control_key}"\n'
            + 'gateway_keys = ["{second}"]\n'
            + f'[gateway]\nsigning_key = "{signer}"\n'
        )
        self.other_signer = signer2
        self.store: Running | None = None

    def start(self) -> None:
        self.one.start()
        self.two.start()
        #: A time after both gateways started reading the control topic.
        self.ready_ns = control.now_ns()
        second = public_line(self.other_signer)  # made by the second gateway's start
        self.config.write_text(self.config.read_text().replace("{second}", second))
        self.store = start_member(self.config, "store")

    def stop(self) -> None:
        if self.store is not None:
            self.store.stop(signal.SIGTERM)
        for gateway in (self.one, self.two):
            if gateway.process is not None and gateway.process.poll() is None:
                gateway.stop()

    def run(self, *argv: str, check: bool = False) -> subprocess.CompletedProcess[bytes]:
        return sshtrail(self.config, *argv, check=check)

    def row(self, session_id: str) -> dict[str, object] | None:
        engine = make_engine(self.store_url)
        try:
            with engine.connect() as conn:
                found = (
                    conn.execute(select(SESSIONS).where(SESSIONS.c.id == uuid.UUID(session_id)))
                    .mappings()
                    .first()
                )
                return dict(found) if found is not None else None
        finally:
            engine.dispose()

    def active_session(
        self, gateway: GatewayProcess, operator: str = "alice"
    ) -> tuple[pexpect.spawn, str]:
        """A shell session through ``gateway``, stored as active; the child and its id."""
        argv = gateway.ssh(f"{operator}:t1", tty=True)
        child = pexpect.spawn(argv[0], argv[1:], timeout=30, env={**os.environ, "TERM": "xterm"})
        child.expect("recorded and may be watched")  # the banner, before anything else
        child.sendline("echo ready-$((40+2))")
        child.expect("ready-42")
        session_id = self._newest_active()
        return child, session_id

    def _newest_active(self) -> str:
        found: list[str] = []

        def stored() -> bool:
            engine = make_engine(self.store_url)
            try:
                with engine.connect() as conn:
                    ids = (
                        conn.execute(
                            select(SESSIONS.c.id)
                            .where(SESSIONS.c.status == "active")
                            .order_by(SESSIONS.c.started_at.desc())
                        )
                        .scalars()
                        .all()
                    )
            finally:
                engine.dispose()
            found[:] = [i.hex for i in ids]
            return bool(found)

        wait_for(stored, what="the session stored as active", timeout=30)
        return found[0]
