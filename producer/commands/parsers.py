"""What each gateway-side command is called and takes: one parser function per command,
named for it; its handler is ``producer.commands.<name>:run``, imported only when it runs,
so other commands never load asyncssh (docs/performance.md, "CLI start-up")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sshtrail.commandkit.arguments import port
from sshtrail.commandkit.options import command


def gateway(commands: Any) -> None:
    parser = command(
        commands,
        "gateway",
        "producer.commands.gateway:run",
        help="run the recording SSH gateway (operators: ssh -p 2222 OPERATOR@TARGET@host)",
        description="Accept operators' SSH connections, open their sessions on the "
        "targets their policy allows, and record every session channel to Kafka "
        "through a durable spool. SIGTERM stops it gracefully.",
    )
    parser.add_argument("--listen", help="address to listen on (default: gateway.listen)")
    parser.add_argument("--port", type=port, help="port to listen on (default: gateway.port, 2222)")


def password_hash(commands: Any) -> None:
    command(
        commands,
        "password-hash",
        "producer.commands.password_hash:run",
        help="hash a password for an operator's or auditor's password_hash (from the "
        "terminal or stdin)",
        description="Print an scrypt hash of a password for the password_hash of an operator "
        "(gateway logins) or an auditor (the web console). Password login stays off for "
        "accounts without one.",
    )


def demo_target(commands: Any) -> None:
    demo = command(
        commands,
        "demo-target",
        "producer.commands.demo_target:run",
        help="run the demo SSH target that 'sshtrail up --demo' starts (loopback only)",
        description="An SSH server on 127.0.0.1 giving a login shell as the current user "
        "to the holder of one key. For trying sshtrail; not for production.",
    )
    demo.add_argument("--port", type=port, required=True)
    demo.add_argument("--host-key", type=Path, required=True, help="created when missing")
    demo.add_argument("--authorized-keys", type=Path, required=True)
