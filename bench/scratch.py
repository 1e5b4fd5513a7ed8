"""Scratch space for a benchmark run, removed when the run ends.

A run writes gigabytes (random blobs, the broker's log, databases); left
behind, a few runs fill the disk.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A new temporary folder, deleted with everything in it when the process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
