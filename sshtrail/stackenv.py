"""The ``SSHTRAIL_*`` variables ``sshtrail up`` ran with, kept in its state dir.

``SSHTRAIL_BROKER__PORT=9196 sshtrail up`` starts a stack whose broker is on
9196; ``sshtrail lag`` typed later in the same folder, without the variable,
would look for it on 9092. So ``up`` writes what its children were given
(the variables, and which settings file it read) to ``up-environment.json``
in its state dir, and :func:`sshtrail.settings.read_settings` applies it to
a command that reads the same settings file and finds that state dir: below
the command's own variables, above the file. The file is replaced whole
(written aside, then renamed), so a reader never sees half of one; it may hold
secrets (a database URL with its password), so it is its owner's only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sshtrail.errors import ConfigError

#: Its name in the state dir.
FILE = "up-environment.json"


@dataclass(frozen=True)
class Recorded:
    """What the last ``sshtrail up`` on a state dir ran with."""

    path: Path
    #: The settings file ``up`` read (absolute), or None when it read none.
    config: Path | None
    environment: dict[str, str]


@dataclass(frozen=True)
class Sources:
    """Where a process's settings came from, for ``sshtrail config`` to say."""

    file: Path | None
    #: ``SSHTRAIL_*`` variables of the process's own environment that were read.
    environment: tuple[str, ...]
    #: The record applied, if one was, and the variables taken from it (those
    #: the process's own environment did not set).
    recorded: Path | None = None
    recorded_variables: tuple[str, ...] = ()
    #: Why a record found in the state dir was not applied.
    skipped: str | None = None
    #: The values taken from the record, to blame a bad one on it.
    recorded_values: dict[str, str] = field(default_factory=dict)


def write(state_dir: Path, config: Path | None, environment: Mapping[str, str]) -> Path:
    """Record ``environment`` (the ``SSHTRAIL_*`` variables) and ``config`` for the
    commands that will run next to this stack; returns the file written."""
    target = state_dir / FILE
    document = {
        "written_by": "sshtrail up",
        "config": str(config.resolve()) if config is not None else None,
        "environment": dict(sorted(environment.items())),
    }
    aside = target.with_name(f".{FILE}.{os.getpid()}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    os.replace(aside, target)
    return target


def read(state_dir: Path) -> Recorded | None:
    """The record in ``state_dir``, None when there is none; :class:`ConfigError`
    naming the file when it cannot be read as one (hand-edited, or not ours)."""
    path = state_dir / FILE
    try:
        document = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=path) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not JSON: {exc}", source=path) from None
    environment = document.get("environment") if isinstance(document, dict) else None
    config = document.get("config") if isinstance(document, dict) else None
    if (
        not isinstance(environment, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items())
        or not (config is None or isinstance(config, str))
    ):
        raise ConfigError(
            "not a record of sshtrail up (remove it, or run sshtrail up again)", source=path
        )
    return Recorded(path, Path(config) if config is not None else None, environment)
