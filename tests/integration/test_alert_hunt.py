"""``sshtrail alerts hunt`` over a real store (SQLite and PostgreSQL): sessions stored by
the store group's writer, SigmaHQ's rules run over them by the real command, nothing
written; a rule file that cannot be used is exit 2 naming it and why."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

import consumer.hunt
from consumer.hunt import HuntFilter
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail.sigmarules import RuleSet, load_rule_file
from sshtrail.tables import ALERTS
from sshtrail.wire import decode_chunk
from tests.support.cli import sshtrail
from tests.support.gateway import toml_value
from tests.support.recordings import events_session, typed_at_prompt
from tests.support.sigma import SIGMA, sigma_rules

pytestmark = pytest.mark.integration

MKFIFO = "proc_creation_lnx_mkfifo_named_pipe_creation.yml"
USERDEL = "proc_creation_lnx_userdel.yml"
GROUPDEL = "proc_creation_lnx_groupdel.yml"
#: Needs CurrentDirectory, which sshtrail does not fill.
NEEDS_FIELD = "proc_creation_lnx_omigod_scx_runasprovider_executescript.yml"
#: A rule of our own that none of the sessions below matches.
BENIGN = """\
title: Reboot Typed
id: 5b1f8e0e-3c1d-4f7a-9a0e-2f2d8c3b7a11
status: test
author: sshtrail tests
logsource:
    product: linux
    category: process_creation
detection:
    selection:
        Image|endswith: '/reboot'
    condition: selection
level: low
"""
DAY_NS = 86_400 * 10**9


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    sigma_rules(MKFIFO)
    folder = tmp_path / "rules"
    folder.mkdir()
    for name in (MKFIFO, USERDEL, GROUPDEL, NEEDS_FIELD):
        shutil.copy(SIGMA / name, folder)
    (folder / "benign.yml").write_text(BENIGN)
    return folder


@pytest.fixture
def config(tmp_path: Path, database_url: str, store_engine: Engine) -> Path:
    """Three sessions stored by the store writer: alice on t1 forty days ago (mkfifo,
    then userdel), bob on t2 today (userdel), carol on t1 today (nothing a rule sees)."""
    now = time.time_ns()
    sessions = [
        events_session(
            [
                typed_at_prompt(b"mkfifo /tmp/p1", 10),
                typed_at_prompt(b"ls", 20),
                typed_at_prompt(b"userdel intruder", 30),
            ],
            started_at=now - 40 * DAY_NS,
        ),
        events_session([typed_at_prompt(b"userdel old", 10)], operator="bob", target="t2"),
        events_session([typed_at_prompt(b"uptime", 10)], operator="carol"),
    ]
    at = dt.datetime.now(dt.UTC)
    writer = StoreWriter(store_engine, dt.timedelta(hours=1))
    for _, messages in sessions:
        writer.write([Received(decode_chunk(m), 0, n, at) for n, m in enumerate(messages)])
    path = tmp_path / "sshtrail.toml"
    path.write_text(
        f"state_dir = {toml_value(str(tmp_path / 'state'))}\n"
        f"[database]\nurl = {toml_value(database_url)}\n"
    )
    return path


def hunt(config: Path, *argv: str) -> tuple[int, str, str]:
    done = sshtrail(config, "alerts", "hunt", *argv, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_a_rule_written_today_finds_last_months_sessions_and_writes_nothing(
    config: Path, rules: Path, store_engine: Engine
) -> None:
    status, out, err = hunt(
        config, str(rules / MKFIFO), str(rules / USERDEL), str(rules / "benign.yml"), "--json"
    )
    assert status == 0, err
    found = json.loads(out)
    assert [(hit["operator"], hit["rule"]["title"], hit["command"]) for hit in found] == [
        ("alice", "Named Pipe Created Via Mkfifo", "mkfifo /tmp/p1"),
        ("alice", "User Has Been Deleted Via Userdel", "userdel intruder"),
        ("bob", "User Has Been Deleted Via Userdel", "userdel old"),
    ]
    assert found[0]["rule"]["author"]  # DRL 1.1: the rule is credited
    old = dt.datetime.fromisoformat(found[0]["time"])
    assert dt.datetime.now(dt.UTC) - old > dt.timedelta(days=39)
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ALERTS)).scalar_one() == 0

    # The table a person reads: one row per hit, with the rule, level and command.
    status, out, _ = hunt(config, str(rules / USERDEL), "--operator", "bob")
    assert status == 0
    [header, row] = out.splitlines()
    assert header.split()[:3] == ["AT", "LEVEL", "RULE"]
    for shown in ("medium", "User Has Been Deleted Via Userdel", "bob", "t2", "userdel old"):
        assert shown in row
    status, out, _ = hunt(config, str(rules / MKFIFO), "--format", "csv")
    assert status == 0
    assert out.splitlines()[1].endswith(",mkfifo /tmp/p1")


def test_since_target_and_session_narrow_the_hunt(config: Path, rules: Path) -> None:
    status, out, _ = hunt(config, str(rules / USERDEL), "--since", "30d", "--json")
    assert status == 0
    assert [hit["operator"] for hit in json.loads(out)] == ["bob"]
    status, out, _ = hunt(config, str(rules / MKFIFO), "--since", "30d", "--json")
    assert (status, json.loads(out)) == (1, [])
    status, out, _ = hunt(config, str(rules / USERDEL), "--target", "t1", "--json")
    [hit] = json.loads(out)
    assert (status, hit["command"]) == (0, "userdel intruder")
    status, out, _ = hunt(config, str(rules / USERDEL), "--session", hit["session"])
    assert status == 0
    assert "userdel intruder" in out
    assert "userdel old" not in out


def test_no_hits_is_exit_1(config: Path, rules: Path) -> None:
    status, out, err = hunt(config, str(rules / "benign.yml"), str(rules / GROUPDEL))
    assert status == 1
    assert "(no hits)" in err
    assert out.split() == ["AT", "LEVEL", "RULE", "OPERATOR", "TARGET", "SESSION", "COMMAND"]


def test_a_rule_file_that_cannot_be_used_is_exit_2_naming_it_and_why(
    config: Path, rules: Path, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.yml"
    garbage.write_bytes(b"title: [not closed\n")
    cases = {
        garbage: "invalid: not one YAML document",
        rules / NEEDS_FIELD: "needs fields CurrentDirectory, LogonId",
        tmp_path / "absent.yml": "cannot read the file",
    }
    for path, reason in cases.items():
        status, out, err = hunt(config, str(rules / MKFIFO), str(path))
        assert status == 2, err
        assert out == ""
        assert err.startswith(f"sshtrail: error: rule file {path} cannot be used: "), err
        assert reason in err
        assert "Traceback" not in err
    copy = tmp_path / "copy.yml"
    shutil.copy(rules / MKFIFO, copy)
    status, _, err = hunt(config, str(rules / MKFIFO), str(copy))
    assert status == 2
    assert f"rule file {copy}: id " in err
    assert "already used by" in err


def test_sessions_are_read_a_page_at_a_time(
    config: Path, rules: Path, store_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer.hunt, "PAGE", 1)
    userdel = load_rule_file(rules / USERDEL)[0]
    assert userdel is not None
    with store_engine.connect() as conn:
        found = list(consumer.hunt.hunt(conn, RuleSet((userdel,), ()), HuntFilter()))
    assert sorted(hit["command"] for hit in found) == ["userdel intruder", "userdel old"]
