"""The consumer side's commands, one module each, named for the command: ``store``,
``index``, ``alert``, ``alerts``, ``lag``, ``lag_exporter``, ``reprocess``, ``completeness``,
``watch``, ``moderate``, ``web``, ``access_log``, ``terminate``, ``lock`` (and ``unlock``),
``locks``, ``reviews`` (and ``review``), ``retention``, ``hold``, ``delete``,
``deletions``. Each has ``run(args, settings)`` (or the handlers its
parser names); their parsers are in :mod:`consumer.commands.parsers` (processes and topic
readers), :mod:`consumer.commands.controlparsers` (requests to the gateways) and
:mod:`consumer.commands.recordparsers` (the stored record), so that ``sshtrail --help``
loads none of what the commands run. Registered through the ``sshtrail.commands``
entry points.

Commands are leaves: nothing imports them (the CLI reaches a handler by its name).
"""

from __future__ import annotations

from typing import Any

from consumer.commands import controlparsers, parsers, recordparsers


def register(commands: Any) -> None:
    """Every consumer-side command, in the order ``sshtrail --help`` lists them."""
    for declare in (
        parsers.store,
        parsers.index,
        parsers.alert,
        parsers.lag,
        parsers.lag_exporter,
        parsers.reprocess,
        parsers.completeness,
        parsers.watch,
        controlparsers.moderate,
        parsers.web,
        recordparsers.access_log,
        controlparsers.terminate,
        controlparsers.lock,
        controlparsers.unlock,
        controlparsers.locks,
        controlparsers.reviews,
        controlparsers.review,
        recordparsers.alerts,
        recordparsers.retention,
        recordparsers.hold,
        recordparsers.delete,
        recordparsers.deletions,
    ):
        declare(commands)
