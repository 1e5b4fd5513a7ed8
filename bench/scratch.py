"""Scratch space for a benchmark run, removed when the run ends.

A run writes gigabytes (random blobs, the broker's log, databases); left
behind, a few runs fill the disk.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A new temporary folder, deleted with everything in it when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def start_demo(
    home: Path, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``sshtrail up --demo`` with its state in ``home`` and every port free (not the
    defaults, which this machine may be using), ``extra_env`` added to its environment;
    returned once it is ready, with what it printed until then. The rest of its output
    is read and dropped."""
    from sshtrail.broker import free_port

    env = {
        **os.environ,
        "SSHTRAIL_STATE_DIR": str(home / "state"),
        "SSHTRAIL_BROKER__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__PORT": str(free_port()),
        "SSHTRAIL_GATEWAY__LISTEN": "127.0.0.1",
        "SSHTRAIL_WEB__PORT": str(free_port()),
        **(extra_env or {}),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "sshtrail", "up", "--demo"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert up.stdout is not None
    said = ""
    for line in up.stdout:
        said += line
        if line.strip().startswith("ready"):
            break
    else:
        sys.exit(f"sshtrail up exited before it was ready ({up.wait()}):\n{said}")
    threading.Thread(target=lambda: [None for _ in up.stdout or ()], daemon=True).start()
    return up, said
