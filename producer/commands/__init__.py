"""The gateway side's commands, one module each, named for the command: ``gateway``,
``password_hash``, ``demo_target``. Each has ``run(args, settings)``; their parsers are in
:mod:`producer.commands.parsers`. Registered through the ``sshtrail.commands`` entry
points. Commands are leaves: nothing imports them (the CLI reaches a handler by its name).
"""

from __future__ import annotations

from typing import Any

from producer.commands import parsers


def register(commands: Any) -> None:
    """Every gateway-side command, in the order ``sshtrail --help`` lists them."""
    for declare in (parsers.gateway, parsers.password_hash, parsers.demo_target):
        declare(commands)
