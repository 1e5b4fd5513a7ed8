"""CPU accounting of the processes a benchmark runs beside it (Linux ``/proc``)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path


def cpu_seconds(pid: int | None, *, main_thread: bool = False) -> float:
    """User + system CPU time a process (or only its main thread) has used so far;
    0 for no process."""
    if pid is None:
        return 0.0
    stat = Path(f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of(name: str) -> float:
    """CPU time used so far by every process whose command name is ``name``
    (e.g. all of PostgreSQL's server processes)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wait_until_idle(pid: int | None, *, busy: float = 0.05, timeout: float = 120.0) -> float:
    """Wait until a process uses less than ``busy`` of a core; returns the seconds waited.

    The embedded broker keeps working for seconds after it acknowledged a
    burst of messages (it writes its log then); a measurement that overlaps
    that work measures the broker's leftovers, not what it set out to.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < busy * 0.5:
            break
    return time.monotonic() - started


def family(root: int) -> list[int]:
    """``root`` and every process descended from it (a gateway's workers, its
    recorder processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return found


def cpu_of(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # ended meanwhile
            continue
    return total
