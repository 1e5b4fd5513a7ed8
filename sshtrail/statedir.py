"""The state directory holds recordings, keys and databases: only its owner may read it.

Every ``sshtrail`` process runs with umask 077, so what it creates is 0600
(files) and 0700 (folders) -- SQLite files, the search index, the spool,
keys, and the embedded broker's data, which inherits the umask. What an
older version left readable by others is tightened by :func:`secure` when a
process that owns the state starts.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

UMASK = 0o077


def secure(path: Path) -> int:
    """Take every permission of group and others off ``path`` and everything under it;
    returns how many files and folders changed."""
    if not path.is_dir():
        return 0
    changed = _restrict(str(path))
    for root, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            changed += _restrict(os.path.join(root, name))
    if changed:
        log.info("restricted %d files and folders under %s to their owner", changed, path)
    return changed


def _restrict(target: str) -> int:
    try:
        info = os.lstat(target)
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
            return 0
        os.chmod(target, mode & 0o700)
    except OSError as exc:
        log.warning("cannot restrict %s to its owner: %s", target, exc.strerror)
        return 0
    return 1
