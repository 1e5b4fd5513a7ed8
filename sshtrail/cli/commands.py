"""What each built-in command is called and takes: the argument parsers, nothing else.

Declared apart from what the commands do, so that building the parser loads
neither SQLAlchemy, Alembic, asyncssh nor librdkafka: ``sshtrail --help``
answers at once, and a command imports only what it runs (its ``handler`` is
``"module:function"``, imported by :func:`sshtrail.cli.main.main` when it runs;
docs/performance.md, "CLI start-up"). producer/ and consumer/ declare theirs in
``producer.commands`` and ``consumer.commands``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sshtrail.cli import auditparsers
from sshtrail.commandkit.options import command, flag


def register(commands: Any) -> None:
    """Every built-in command, in the order ``sshtrail --help`` lists them."""
    for declare in (
        _up,
        _broker,
        _db,
        _config,
        auditparsers.audit,
        auditparsers.evidence,
        auditparsers.replay,
        _escrow,
        _topics,
        _policy,
    ):
        declare(commands)


def _up(commands: Any) -> None:
    parser = command(
        commands,
        "up",
        "sshtrail.cli.up:run",
        help="start the local stack: broker, database, gateway (Ctrl-C stops it)",
        description="Start everything sshtrail needs on this machine and keep it "
        "running until Ctrl-C or SIGTERM: the embedded broker (unless --kafka or "
        "kafka.bootstrap_servers names an Apache Kafka), the topics, the session store "
        "at the latest schema, one member of each consumer group (store, index), the "
        "gateway and the web console. Missing topics are created as docs/operations.md "
        "recommends; existing ones are checked: a difference that is safe is a warning, "
        "one that breaks a promise (a control topic not compacted, a sessions topic "
        "holding messages with another partition count than kafka.partitions ...) "
        "starts nothing, exit status 1. A second run reuses the state in state_dir.",
    )
    parser.add_argument(
        "--kafka",
        metavar="HOST:PORT,...",
        help="use this Apache Kafka instead of the embedded broker "
        "(kafka.bootstrap_servers; the stack's processes use it too)",
    )
    flag(
        parser,
        "--demo",
        "also start a demo target (a login shell as you, loopback only) and a demo "
        "operator, and print the ssh command to try",
    )
    flag(
        parser,
        "--verbose",
        "show the logs of the stack's processes here, instead of in STATE/logs/",
    )


def _broker(commands: Any) -> None:
    parser = command(
        commands,
        "broker",
        "sshtrail.cli.broker:run",
        help="run the embedded Kafka-protocol broker (development and tests)",
        description="Run the embedded Kafka-protocol broker in the foreground until "
        "Ctrl-C or SIGTERM. Its data survives restarts. Production uses Apache Kafka.",
    )
    parser.add_argument("--host", help="address to listen on (default: broker.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: broker.port, 9092)")
    parser.add_argument("--data-dir", type=Path, help="where to keep data (default: STATE/broker)")
    flag(parser, "--no-topics", "do not create the sessions and dead-letter topics on start")


#: What ``db``'s actions do, as ``sshtrail db --help`` lists them.
_UPGRADE = "apply migrations up to REVISION (default head)"
_DOWNGRADE = "revert migrations down to REVISION"
_CURRENT = "print the database's schema revision"
_CHECK = "fail if the models and the migrations differ"


def _db(commands: Any) -> None:
    parser = commands.add_parser(
        "db",
        help="migrate the session store (upgrade, downgrade, current, check)",
        description="Manage the session store's schema with the Alembic migrations "
        "shipped in sshtrail. The database is database.url from the settings.",
    )
    parser.add_argument("--url", help="database URL (default: database.url, else SQLite in STATE)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    upgrade = command(actions, "upgrade", "sshtrail.cli.db:_upgrade", help=_UPGRADE)
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = command(actions, "downgrade", "sshtrail.cli.db:_downgrade", help=_DOWNGRADE)
    downgrade.add_argument("revision", help="target revision, or 'base' to drop everything")
    command(actions, "current", "sshtrail.cli.db:_current", help=_CURRENT)
    command(actions, "check", "sshtrail.cli.db:_check", help=_CHECK)


def _config(commands: Any) -> None:
    parser = command(
        commands,
        "config",
        "sshtrail.cli.config:run",
        help="validate the settings and print the effective values as JSON",
        description="Read the settings file and SSHTRAIL_* variables exactly as every "
        "other command does, and print the result. Exit status 2 names the bad key.",
    )
    flag(
        parser,
        "--reference",
        "print every settings key with its type, default, environment variable and "
        "meaning (Markdown, as in docs/operations.md) instead",
    )


def _escrow(commands: Any) -> None:
    keygen = command(
        commands,
        "escrow-keygen",
        "sshtrail.cli.escrow:run_keygen",
        help="make an escrow key pair: masked input is sealed to its public key",
        description="Write a new X25519 private key to PATH (mode 0600) and its public key "
        "to PATH.pub, and print the public key for gateway.escrow_public_key. Keep the "
        "private key away from the gateway: whoever holds it can reveal what operators "
        "typed without echo (passwords included).",
    )
    keygen.add_argument("path", type=Path, metavar="PATH")

    reveal = command(
        commands,
        "reveal",
        "sshtrail.cli.escrow:run_reveal",
        help="show a session's masked input, opened with the escrow private key",
        description="Open the input a session's gateway sealed because the terminal did not "
        "echo it (passwords, or commands typed with echo off), with the escrow private key. "
        "Each reveal is logged.",
    )
    reveal.add_argument("session", metavar="SID", help="session id or a unique prefix of it")
    reveal.add_argument(
        "--key",
        type=Path,
        required=True,
        metavar="PATH",
        help="the escrow private key (from escrow-keygen)",
    )
    reveal.add_argument("--reason", default="", help="why, for the log")
    flag(reveal, "--json")


def _topics(commands: Any) -> None:
    parser = command(
        commands,
        "topics",
        "sshtrail.cli.topics:run",
        help="create the sessions, dead-letter and control topics if missing, and check them",
        description="Create kafka.topic, kafka.dlq_topic and control.topic where they do "
        "not exist, as docs/operations.md recommends (kafka.partitions; "
        "kafka.replication_factor, else 3 or the brokers if fewer; min.insync.replicas "
        "one less; retention 30 days; the control topic compacted; kafka.topic_config "
        "over these), then print what each has and how an existing one differs. An "
        "existing topic is never changed. Exit status 1 when the brokers cannot be "
        "reached, a topic cannot be created, or a difference breaks a promise (a control "
        "topic not compacted, a sessions topic holding messages with another partition "
        "count than kafka.partitions ...).",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying to reach the brokers for this long (a stack that is starting)",
    )


def _policy(commands: Any) -> None:
    parser = commands.add_parser(
        "policy",
        help="check a command policy file, or see which rule decides a command",
        description="Command policy (policy.file; docs/policy.md). 'policy check [FILE]' "
        "reads the rules as the gateway would and says what is wrong (exit 2) or lists "
        "them (exit 0). 'policy test --operator O --target T COMMAND' prints which rule "
        "decides COMMAND and exits 0 when it is accepted, 1 when rejected, 3 when warned, "
        "4 when held for review.",
    )
    actions = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = command(
        actions,
        "check",
        "sshtrail.cli.policy:run_check",
        help="read a rule file and list its rules",
    )
    check.add_argument("file", nargs="?", type=Path, metavar="FILE", help="default: policy.file")
    test = command(
        actions,
        "test",
        "sshtrail.cli.policy:run_test",
        help="which rule decides a command, and why",
    )
    test.add_argument("command", metavar="COMMAND", help="the command line, as typed")
    test.add_argument("--operator", required=True, metavar="NAME")
    test.add_argument("--target", required=True, metavar="NAME")
    test.add_argument("--file", type=Path, metavar="FILE", help="default: policy.file")
    flag(test, "--json")
