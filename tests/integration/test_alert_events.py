"""Rules on a session's events other than commands, against a real store (SQLite and
PostgreSQL): sessions stored by the store group's writer with environment variables, an
SFTP upload, a policy decision, a forwarded connection and a refused login; one rule of
each of sshtrail's log sources (tests/integration/sshtrail_rules) and SigmaHQ's mkfifo
rule, through the alert group's writer and through ``alerts hunt``'s reading."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

import consumer.hunt
from consumer.alerter import AlertWriter
from consumer.alertrules import RulesInForce
from consumer.hunt import HuntFilter
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import events as ev
from sshtrail.chain import ChainWriter
from sshtrail.ids import uuid7
from sshtrail.sigmarules import CATEGORIES, load_rules
from sshtrail.tables import ALERTS
from sshtrail.wire import decode_chunk
from tests.support import sftpwire as w
from tests.support.cli import sshtrail
from tests.support.gateway import toml_value
from tests.support.recordings import SIGNER, events_session, typed_at_prompt
from tests.support.sigma import SIGMA, sigma_rules

pytestmark = pytest.mark.integration

OURS = Path(__file__).resolve().parent / "sshtrail_rules"
MKFIFO = "proc_creation_lnx_mkfifo_named_pipe_creation.yml"
CRONTAB = b"* * * * * root id\n"


def refused_login() -> list[bytes]:
    """A login the gateway refused, recorded as it records one: a start and an end."""
    writer = ChainWriter(uuid7(), SIGNER)
    start = ev.Start(0, "mallory", "127.0.0.1:50001", "t1", "127.0.0.1", 22, "root",
                     "gw-test", "", 0, 0, time.time_ns())  # fmt: skip
    reason = "refused: authentication failed (3 failed attempts: password 3)"
    return [writer.encode([start, ev.End(5, reason, 0, 0, 1, writer.public_key)])]


def sessions() -> list[list[bytes]]:
    requests, replies = w.upload("/etc/cron.d/backdoor", CRONTAB)
    upload: list[ev.Event] = [
        event
        for at, (request, reply) in enumerate(zip(requests, replies, strict=True), start=10)
        for event in (ev.Input(2 * at, request), ev.Output(2 * at + 1, reply))
    ]
    shell = events_session(
        [
            [
                ev.Env(1, b"LD_PRELOAD", b"/tmp/x.so", True),
                ev.Env(1, b"LD_LIBRARY_PATH", b"/tmp", True),  # one instant, one rule
                ev.Env(1, b"LD_AUDIT", None, False),  # withheld and refused
                ev.Env(1, b"CMD", b"mkfifo /tmp/env", True),  # not a process
            ],
            typed_at_prompt(b"mkfifo /tmp/p1", 10),
            [ev.Notice(20, "policy", "warn by rule careful: mkfifo /tmp/warned")],
        ]
    )
    sftp = events_session(
        [[ev.Input(1, w.INIT), ev.Output(2, w.VERSION)], upload],
        term="",
        request=("subsystem", b"sftp"),
    )
    forward = events_session(
        [[ev.Input(1, b"\x03\x00"), ev.Output(2, b"\x03\x00")]],
        term="",
        request=("direct-tcpip", b"10.0.0.9:3389"),
    )
    return [shell[1], sftp[1], forward[1], refused_login()]


def received(messages: list[bytes]) -> list[Received]:
    at = dt.datetime.now(dt.UTC)
    return [Received(decode_chunk(m), 0, n, at) for n, m in enumerate(messages)]


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    sigma_rules(MKFIFO)
    folder = tmp_path / "rules"
    shutil.copytree(OURS, folder)
    shutil.copy(SIGMA / MKFIFO, folder)
    return folder


EXPECTED = Counter(
    {
        ("Dynamic Linker Variable Sent By The Client", "LD_PRELOAD=/tmp/x.so"): 1,
        ("Dynamic Linker Variable Sent By The Client", "LD_LIBRARY_PATH=/tmp"): 1,
        ("Named Pipe Created Via Mkfifo", "mkfifo /tmp/p1"): 1,
        ("Command Run After A Policy Warning", "warn by rule careful: mkfifo /tmp/warned"): 1,
        ("Session Closed By The Client", "session end: closed"): 3,
        ("File Uploaded Into A Cron Folder", "sftp upload /etc/cron.d/backdoor"): 1,
        ("RDP Forwarded Through The Gateway", "direct-tcpip 10.0.0.9:3389"): 1,
        (
            "Login Refused After Failed Attempts",
            "login refused: authentication failed (3 failed attempts: password 3)",
        ): 1,
    }
)


def test_each_log_source_raises_exactly_its_alerts_live_and_in_a_hunt(
    store_engine: Engine, rules: Path
) -> None:
    loaded = load_rules(rules)
    assert [s.status for s in loaded.statuses] == ["active"] * 7
    store = StoreWriter(store_engine, dt.timedelta(hours=1))
    alerts = AlertWriter(store_engine, RulesInForce(rules))
    for messages in sessions():
        store.write(received(messages))
        alerts.write(received(messages))
        alerts.write(received(messages))  # re-delivered: the same ids, stored once
    with store_engine.connect() as conn:
        stored = conn.execute(select(ALERTS.c.id, ALERTS.c.title, ALERTS.c.command)).all()
        hunted = list(consumer.hunt.hunt(conn, loaded, HuntFilter()))
    assert Counter((title, command) for _, title, command in stored) == EXPECTED
    # The mkfifo in the policy notice and in CMD's value is no process: SigmaHQ's
    # rule fired on the command only.
    assert sorted(hit["id"] for hit in hunted) == sorted(row.id for row in stored)
    [upload] = [hit for hit in hunted if hit["title"] == "File Uploaded Into A Cron Folder"]
    assert upload["event"]["Sha256"] == hashlib.sha256(CRONTAB).hexdigest()
    assert upload["event"]["Operator"] == "alice"


def test_alerts_rules_shows_each_rules_log_source(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(OURS, folder)
    (folder / "dns.yml").write_text(
        (OURS / "login.yml").read_text().replace("category: login", "category: dns")
    )
    config = tmp_path / "sshtrail.toml"
    config.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
        f"[alerts]\nrules = {toml_value(str(folder))}\n"
    )
    listed = json.loads(sshtrail(config, "alerts", "rules", "--json").stdout)
    shown = {Path(rule["file"]).stem: (rule["status"], rule["logsource"]) for rule in listed}
    assert shown == {
        **{name: ("active", f"sshtrail/{name}") for name in CATEGORIES},
        "dns": ("invalid", None),
    }
    [dns] = [rule for rule in listed if rule["file"].endswith("dns.yml")]
    assert dns["reason"] == (
        "invalid: logsource product sshtrail with category dns: its categories are "
        "session, request, environment, file_transfer, policy, login"
    )
    table = sshtrail(config, "alerts", "rules").stdout.decode()
    assert table.splitlines()[0].split() == ["FILE", "STATUS", "LOGSOURCE", "TITLE", "REASON"]
    assert "sshtrail/environment" in table
