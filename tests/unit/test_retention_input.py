"""Bad input to retention: rules in the settings and the commands' arguments, each
refused with a message that names what is wrong (and nothing deleted or held)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sshtrail import migrate
from sshtrail.cli.main import main
from sshtrail.db import make_engine
from sshtrail.durations import parse_duration
from sshtrail.errors import ConfigError
from sshtrail.settings import load_settings
from sshtrail.tables import HOLDS
from sshtrail.timespec import later


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("12h", 43200), ("90d", 90 * 86400), ("7y", 7 * 365 * 86400), ("2w", 1209600)],
)
def test_durations_that_are_read(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5 days", "not a duration"),
        ("1.5d", "not a duration"),
        ("-1d", "not a duration"),
        ("10x", "not a duration"),
        ("", "not a duration"),
        ("0s", "is zero"),
        ("101y", "longer than 100 years"),
        ("7Y", "not a duration"),
    ],
)
def test_durations_that_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_duration(text)


def settings_with(tmp_path: Path, rules: str) -> Path:
    path = tmp_path / "sshtrail.toml"
    path.write_text(rules)
    return path


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ('[[retention.rule]]\nname = "a"\nkeep = "5 days"\n', r"retention.rule.0: not a duration"),
        ('[[retention.rule]]\nname = "a"\n', r"retention.rule.0: .*keep"),
        (
            '[[retention.rule]]\nname = "a"\nkeep = "90d"\ndelete_after = "30d"\n',
            "delete_after must be at least keep",
        ),
        (
            '[[retention.rule]]\nname = "a"\nkeep = "1d"\n[[retention.rule]]\nname = "a"\n'
            'keep = "2d"\n',
            "names must be unique",
        ),
        ('[[retention.rule]]\nname = "a"\nkeep = "1d"\nttl = "2d"\n', "unknown key"),
        ('[[retention.rule]]\nname = "a"\nkeep = "1d"\noperators = ["a b"]\n', "operators"),
        ('[[retention.rule]]\nname = "a b"\nkeep = "1d"\n', "name"),
        ("[retention]\ncheck_s = 0\n", "check_s"),
        ('[retention]\naccess_log_keep = "forever"\n', r"retention.*not a duration"),
    ],
)
def test_rules_that_cannot_be_read_stop_the_settings(
    tmp_path: Path, rules: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(settings_with(tmp_path, rules), {})


def test_a_plan_time_ahead_is_written_with_a_plus() -> None:
    with pytest.raises(ValueError, match=r"\+7d"):
        later("7d")
    assert later("+1d") > dt.datetime.now(dt.UTC)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    path = tmp_path / "sshtrail.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n[database]\nurl = "{url}"\n')
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str]:
    try:
        status = main(["--config", str(config), *argv])
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out + err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hold", "add", "--operator", "alice", "--reason", "r", "--case", "a b"], "case id"),
        (["hold", "add", "--operator", "a b", "--reason", "r", "--case", "C1"], "a name of"),
        (["hold", "add", "--operator", "alice", "--reason", " ", "--case", "C1"], "reason"),
        (["hold", "add", "--operator", "alice", "--case", "C1"], "--reason"),
        (["hold", "add", "--reason", "r", "--case", "C1"], "names a session, an operator"),
        (
            [
                "hold",
                "add",
                "--target",
                "t",
                "--since",
                "2026-02-01",
                "--until",
                "2026-01-01",
                "--reason",
                "r",
                "--case",
                "C1",
            ],
            "--until is before --since",
        ),
        (["hold", "release", "zz", "--reason", "r"], "a hold id"),
        (["hold", "release", "abcd1234", "--reason", "r"], "no hold"),
        (["delete", "0190", "--reason", ""], "reason"),
        (["delete", "0190"], "--reason"),
        (["retention", "plan", "--at", "7d"], r"\+7d"),
        (["retention", "show", "--at", "yesterday"], "neither a duration"),
        (["deletions", "--limit", "0"], "1 to 1000000"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_held(
    capsys: pytest.CaptureFixture[str], config: Path, argv: list[str], message: str
) -> None:
    status, text = run(capsys, config, *argv)
    assert status in (2, 3), text
    assert re.search(message, text), text
    engine = make_engine(f"sqlite:///{config.parent / 'store.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(HOLDS)).scalar_one() == 0
    engine.dispose()


def test_delete_of_no_such_session_is_not_found(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    status, text = run(capsys, config, "delete", "0190abcd", "--reason", "GDPR")
    assert status == 3
    assert "no session id starts with 0190abcd" in text
