"""Operator locks as the gateway knows them: the request signed last wins, in any read order.

Every lock and unlock carries the time its requester signed (``at``, in
nanoseconds). For each operator the gateway keeps the newest ``(at,
request_id)`` it applied; a request that is not newer is a replay or a copy
read out of order (another partition, a re-read after a reconnection) and
changes nothing. So a copy of an old unlock re-sent after a later lock does
not unlock, and a gateway rebuilding its locks from the compacted topic ends
in the same state whatever the order its partitions are read in.

The newest request per operator is also kept in a file of the gateway's state
(written atomically after the requests that changed it), read back at start
before the topic: compaction keeps only the last message of a key, so a copy
of an old unlock re-sent under the operator's own key can outlive the later
lock on the topic, and a gateway that restarts must still know that lock.

Shared by the control listener's thread (which applies) and the event loop
(which asks); one mutex guards both maps.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import msgspec

from sshtrail import control

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Locked:
    auditor: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stale:
    """A request not applied: ``newest`` is the signing time of the one in force."""

    newest: int


class _Saved(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The newest request of one operator, in the state file."""

    at: int
    request_id: str
    locked: bool
    auditor: str
    reason: str


class Locks:
    """Each operator's lock, decided by signing time, not by reading order; kept in
    ``path`` when given."""

    def __init__(self, path: Path | None = None) -> None:
        self._newest: dict[str, tuple[int, str]] = {}
        self._locked: dict[str, Locked] = {}
        self._mutex = threading.Lock()
        self._path = path
        self._changed = False
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            saved = msgspec.json.decode(path.read_bytes(), type=dict[str, _Saved])
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("cannot read the saved operator locks %s (%s): the topic alone", path, exc)
            return
        for operator, entry in saved.items():
            self._newest[operator] = (entry.at, entry.request_id)
            if entry.locked:
                self._locked[operator] = Locked(entry.auditor, entry.reason)

    def save(self) -> None:
        """Write the state file if a request changed it since the last save: to a
        temporary file, synced, then renamed over the old one."""
        if self._path is None:
            return
        with self._mutex:
            if not self._changed:
                return
            self._changed = False
            saved = {
                operator: self._saved(operator, *order) for operator, order in self._newest.items()
            }
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = self._path.with_name(self._path.name + ".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(msgspec.json.encode(saved))
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(self._path)

    def apply(self, request: control.Lock | control.Unlock) -> Stale | None:
        """Apply ``request`` if it was signed after every other one of its operator seen
        so far (None); otherwise change nothing and say what is in force (:class:`Stale`)."""
        order = (request.at, request.request_id)
        with self._mutex:
            newest = self._newest.get(request.operator)
            if newest is not None and order <= newest:
                return Stale(newest[0])
            self._newest[request.operator] = order
            self._changed = True
            if isinstance(request, control.Lock):
                self._locked[request.operator] = Locked(request.auditor, request.reason)
            else:
                self._locked.pop(request.operator, None)
            return None

    def _saved(self, operator: str, at: int, request_id: str) -> _Saved:
        held = self._locked.get(operator)
        if held is None:
            return _Saved(at, request_id, locked=False, auditor="", reason="")
        return _Saved(at, request_id, locked=True, auditor=held.auditor, reason=held.reason)

    def locked(self, operator: str) -> Locked | None:
        with self._mutex:
            return self._locked.get(operator)
