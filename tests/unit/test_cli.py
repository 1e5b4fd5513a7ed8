"""The command line as a user meets it: help, and clear errors with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sshtrail import migrate
from sshtrail.cli.main import main
from sshtrail.commandkit.arguments import port, positive, ranged
from sshtrail.commandkit.output import print_table

COMMANDS = (
    "up",
    "broker",
    "db",
    "config",
    "sessions",
    "show",
    "search",
    "transfers",
    "verify",
    "export",
    "replay",
    "gateway",
    "password-hash",
    "demo-target",
    "store",
    "index",
    "alert",
    "lag",
    "lag-exporter",
    "reprocess",
    "watch",
    "topics",
    "completeness",
    "escrow-keygen",
    "reveal",
    "web",
    "access-log",
    "terminate",
    "lock",
    "unlock",
    "locks",
    "reviews",
    "review",
    "moderate",
    "alerts",
    "policy",
    "retention",
    "hold",
    "delete",
    "deletions",
)
#: Commands' actions, each with a parser, help and usage errors of its own.
ACTIONS = (
    "db upgrade",
    "db downgrade",
    "db current",
    "db check",
    "alerts rules",
    "alerts hunt",
    "policy check",
    "policy test",
    "web sessions",
    "web revoke",
    "retention show",
    "retention plan",
    "hold add",
    "hold list",
    "hold release",
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse exits for --help and usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_every_command_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in COMMANDS:
        assert f"\n    {command} " in out
    assert "start the local stack" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert f"usage: sshtrail {command}" in out


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_has_help_and_its_own_usage_errors(
    capsys: pytest.CaptureFixture[str], action: str
) -> None:
    status, out, _ = run(capsys, *action.split(), "--help")
    assert status == 0
    assert f"usage: sshtrail {action}" in out
    status, _, err = run(capsys, *action.split(), "--no-such-flag")
    assert status == 2
    assert f"sshtrail {action}: error: " in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "frobnicate")
    assert status == 2
    assert "invalid choice: 'frobnicate'" in err


def test_config_error_names_key_and_file_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "sshtrail.toml"
    path.write_text("[database]\nurl = 5\n")
    status, out, err = run(capsys, "--config", str(path), "config")
    assert status == 2
    assert out == ""
    assert err == f"sshtrail: config error: {path}: database.url: expected `str`, got `int`\n"


def test_unknown_key_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sshtrail.toml"
    path.write_text("[gatway]\nport = 2222\n")
    status, _, err = run(capsys, "-c", str(path), "db", "current")
    assert status == 2
    assert f"{path}: gatway: unknown key" in err


def test_config_prints_effective_settings_without_secrets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "sshtrail.toml"
    path.write_text(
        '[database]\nurl = "postgresql://audit:hunter2@db.example:5432/sshtrail"\n'
        '[search]\nurl = "postgresql://index:tr0ub4dor@db.example/search"\n'
        '[kafka.client]\n"sasl.password" = "s3cret"\n'
        '[[operators]]\nname = "alice"\npassword_hash = "scrypt$16384$8$1$c2FsdA$aGFzaA"\n'
        '[web.oidc]\ndiscovery_url = "https://idp.example/"\nclient_id = "console"\n'
        'client_secret = "oidc-s3cret"\n'
    )
    status, out, _ = run(capsys, "-c", str(path), "config")
    assert status == 0
    for secret in ("hunter2", "tr0ub4dor", "s3cret", "scrypt$", "oidc-s3cret"):
        assert secret not in out
    shown = json.loads(out)
    assert shown["database"]["url"] == "postgresql+psycopg://audit:***@db.example:5432/sshtrail"
    assert shown["search"]["url"] == "postgresql+psycopg://index:***@db.example/search"
    assert shown["kafka"]["client"] == {"sasl.password": "(set)"}
    assert shown["operators"][0]["password_hash"] == "(set)"
    assert shown["web"]["oidc"]["client_secret"] == "(set)"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL"),
        ("mysql://root@localhost/x", "unsupported database 'mysql'"),
    ],
)
def test_bad_database_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], url: str, message: str
) -> None:
    status, _, err = run(capsys, "db", "--url", url, "current")
    assert status == 2
    assert message in err


def test_broker_port_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "broker", "--port", "99999")
    assert status == 2
    assert "--port 99999 is not a TCP port" in err
    status, _, err = run(capsys, "broker", "--port", "many")
    assert status == 2
    assert "invalid int value: 'many'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["store", "--metrics-port", "http"], "argument --metrics-port: 'http' is not a TCP port"),
        (["store", "--metrics-port", "70000"], "'70000' is not a TCP port (0-65535)"),
        (["index", "--group", "my group"], "'my group' is not a valid id"),
        (["index", "--instance-id", "\x1b[2J"], "is not a valid id"),
        (["gateway", "--port", "99999"], "'99999' is not a TCP port"),
        (["completeness", "--partition", "-1"], "'-1' is not a partition number"),
        (["reprocess", "--group", "store", "--from-offset", "0", "--partition", "x"], "not a"),
        (["demo-target", "--port", "-1", "--host-key", "k", "--authorized-keys", "a"], "not a TCP"),
        (["sessions", "--since", "999999999w"], "'999999999w' is outside the times that can"),
        (["search", "x", "--until", "9999-12-31T23:59-01:00"], "is outside the times that"),
        (["search", "x", "--until", "noon"], "'noon' is neither a duration like 2h"),
        (["replay", "abc", "--from", "1:x"], "'1:x' is not an offset like 01:02:03"),
    ],
)
def test_consumer_options_are_checked(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert message in err


def test_store_refuses_a_database_without_the_schema(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    status, _, err = run(capsys, "store")
    assert status == 1
    assert "the database is at schema none" in err
    assert "run 'sshtrail db upgrade' first" in err


def test_admin_commands_say_once_that_the_broker_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSHTRAIL_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9")  # nothing listens
    assert main(["lag"]) == 2  # an error-class answer: lag cannot be judged
    _, err = capfd.readouterr()
    assert err.splitlines() == [
        "sshtrail: error: cannot read the lag of sshtrail-store from 127.0.0.1:9: "
        "Failed to get metadata: Local: Broker transport failure"
    ]


#: What only some commands need, each costing tens to hundreds of milliseconds to import.
HEAVY = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "alembic",
    "asyncssh",
    "confluent_kafka",
    "cryptography",
    "pyte",
)


def test_declaring_every_command_loads_none_of_what_commands_run() -> None:
    """``sshtrail --help`` and every command's parser cost no heavy import; a command
    imports what it runs when it runs (startup cost, docs/performance.md)."""
    probe = (
        "import sys\n"
        "from sshtrail.cli.main import build_parser\n"
        "action = next(a for a in build_parser()._actions if a.dest == 'command')\n"
        "print(','.join(sorted(action.choices)))\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    names, loaded = done.stdout.split("\n")[:2]
    assert set(names.split(",")) == set(COMMANDS)
    assert loaded == "", f"building the parser imported {loaded}"


def test_listing_sessions_loads_neither_kafka_nor_ssh_nor_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An auditor's command reads the database (SQLAlchemy Core) and checks signatures
    (cryptography): no ORM, Kafka client, SSH library, migrations or terminal emulator."""
    monkeypatch.chdir(tmp_path)
    migrate.upgrade(f"sqlite:///{tmp_path / 'store.db'}")
    probe = (
        "import sys\n"
        "from sshtrail.cli.main import main\n"
        "status = main(['sessions'])\n"
        f"print(status, ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "SSHTRAIL_DATABASE__URL": f"sqlite:///{tmp_path / 'store.db'}"},
    )
    assert done.stdout.splitlines()[-1] == "0 sqlalchemy,cryptography"


def test_the_core_tables_are_what_the_models_say() -> None:
    """sshtrail/tables.py is generated from the models: regenerate it after a model change
    (python -m sshtrail.tablegen sshtrail/tables.py)."""
    from sshtrail import tablegen, tables
    from sshtrail.models import Base

    assert Path(tables.__file__).read_text() == tablegen.render()
    for name, table in Base.metadata.tables.items():
        core = tables.METADATA.tables[name]
        assert [(c.name, repr(c.type), c.primary_key) for c in core.columns] == [
            (c.name, repr(c.type), c.primary_key) for c in table.columns
        ]


def test_a_table_fits_the_terminal_by_cutting_its_widest_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        ("ID", "REQUEST", "STATUS"),
        ("01a2b3c4", "exec: " + "x" * 200, "closed"),
        ("01a2b3c5", "shell", "refused"),
    ]
    print_table(rows, width=60)
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 60
    assert lines[1].startswith("01a2b3c4  exec: xxx")
    assert "…" in lines[1]
    assert lines[1].rstrip().endswith("closed")  # the short columns keep every character
    print_table(rows)  # not a terminal: every character, for grep and cut
    assert "x" * 200 in capsys.readouterr().out


def test_bounded_number_arguments_refuse_what_is_outside_or_not_a_number() -> None:
    seconds = ranged(float, 0.0, 3600.0, "a number of seconds from 0 to 3600")
    assert seconds("0") == 0.0
    assert seconds("3600") == 3600.0
    for bad in ("-1", "3600.5", "nan", "inf", "soon", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a number of seconds"):
            seconds(bad)
    assert positive("7") == 7
    for bad in ("0", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a positive whole number"):
            positive(bad)
    assert port("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=r"'65536' is not a TCP port \(0-65535\)"):
        port("65536")


def test_policy_test_exits_by_the_decision_and_check_says_what_is_wrong(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rules = tmp_path / "policy.toml"
    rules.write_text(
        '[[rule]]\nname = "no-rm"\naction = "reject"\nmatch = ["rm"]\n'
        '[[rule]]\nname = "w"\naction = "warn"\nmatch = ["touch"]\nmessage = "watched"\n'
    )
    test = ("policy", "test", "--file", str(rules), "--operator", "a", "--target", "t")
    assert run(capsys, *test, "ls; rm x")[:2] == (
        1,
        "reject by rule no-rm (matched: rm)\n"
        "the operator is told: this command is not allowed here (rule no-rm)\n",
    )
    assert run(capsys, *test, "touch x")[0] == 3
    assert run(capsys, *test, 'echo "rm is fine"')[:2] == (0, "accept (no rule matches)\n")
    status, out, _ = run(capsys, "policy", "check", str(rules))
    assert status == 0
    assert "2 rules in" in out
    rules.write_text('[[rule]]\nname = "x"\naction = "reject"\nmatch = ["re:[a-"]\n')
    status, _, err = run(capsys, "policy", "check", str(rules))
    assert status == 2
    assert "rule 1 (x): 're:[a-' is not a regular expression" in err
    status, _, err = run(capsys, "policy", "check")
    assert status == 2
    assert "no policy file: give FILE, or set policy.file" in err
