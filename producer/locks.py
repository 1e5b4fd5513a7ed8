"""Operator locks as the gateway knows them: the request signed last wins, in any read order.

Every lock and unlock carries the time its requester signed (``at``, in
nanoseconds). For each operator the gateway keeps the newest ``(at,
request_id)`` it applied; a request that is not newer is a replay or a copy
read out of order (another partition, a re-read after a reconnection) and
changes nothing. So a copy of an old unlock re-sent after a later lock does
not unlock, and a gateway rebuilding its locks from the compacted topic ends
in the same state whatever the order its partitions are read in.

Shared by the control listener's thread (which applies) and the event loop
(which asks); one mutex guards both maps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sshtrail import control


@dataclass(frozen=True, slots=True)
class Locked:
    auditor: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stale:
    """A request not applied: ``newest`` is the signing time of the one in force."""

    newest: int


class Locks:
    """Each operator's lock, decided by signing time, not by reading order."""

    def __init__(self) -> None:
        self._newest: dict[str, tuple[int, str]] = {}
        self._locked: dict[str, Locked] = {}
        self._mutex = threading.Lock()

    def apply(self, request: control.Lock | control.Unlock) -> Stale | None:
        """Apply ``request`` if it was signed after every other one of its operator seen
        so far (None); otherwise change nothing and say what is in force (:class:`Stale`)."""
        order = (request.at, request.request_id)
        with self._mutex:
            newest = self._newest.get(request.operator)
            if newest is not None and order <= newest:
                return Stale(newest[0])
            self._newest[request.operator] = order
            if isinstance(request, control.Lock):
                self._locked[request.operator] = Locked(request.auditor, request.reason)
            else:
                self._locked.pop(request.operator, None)
            return None

    def locked(self, operator: str) -> Locked | None:
        with self._mutex:
            return self._locked.get(operator)
