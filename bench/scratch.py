"""Scratch space for a benchmark run, removed when the run ends.

A run writes gigabytes (random blobs, the broker's log, databases); left
behind, a few runs fill the disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A new temporary folder, deleted with everything in it when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def demo_env(home: Path) -> dict[str, str]:
    """The environment of an ``sshtrail up --demo`` of a benchmark: state in ``home``,
    every port free (not the defaults, which this machine may be using)."""
    from sshtrail.broker import free_port

    return {
        **os.environ,
        "SSHTRAIL_STATE_DIR": str(home / "state"),
        "SSHTRAIL_BROKER__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__LISTEN": "127.0.0.1",
        "SSHTRAIL_WEB__PORT": str(free_port()),
    }
