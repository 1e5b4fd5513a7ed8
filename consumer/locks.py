"""Operator locks as the gateways decide them, read from the whole control topic.

A lock is in force until an unlock, however long ago it was made, so
:class:`LockBoard` reads the control topic from its first message, not from a
look-back. For each operator it keeps the :class:`~sshtrail.control.Lock` or
:class:`~sshtrail.control.Unlock` signed last (``at``, then the request id: the order
``producer/locks.py`` applies), taking only those signed by a key of
``control.trusted_keys`` under the operator's own key -- what a gateway obeys. So a
copy of an old lock re-sent after a later unlock, or a lock signed by an unknown key,
is not shown as in force.

What the board cannot know is what compaction removed: the topic keeps only the last
message written under ``operator:NAME``, so once compacted, a re-sent copy of an older
request may be all that is left (the gateways keep what they applied in their state
file; docs/operations.md, "Operator locks").

Used by ``sshtrail locks`` and the console's Locks page.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from consumer.controlboard import ControlBoard
from sshtrail import control
from sshtrail.settings import Settings

#: The key prefix of locks and unlocks (``operator:NAME``).
OPERATOR_PREFIX = b"operator:"


@dataclass(frozen=True, slots=True)
class LockItem:
    """One operator: the lock or unlock in force."""

    request: control.Lock | control.Unlock

    @property
    def operator(self) -> str:
        return self.request.operator

    @property
    def locked(self) -> bool:
        return isinstance(self.request, control.Lock)

    @property
    def end_sessions(self) -> bool:
        """Whether the lock in force also ended the operator's sessions."""
        return isinstance(self.request, control.Lock) and self.request.end_sessions

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.request.at / 1e9, dt.UTC)

    def as_json(self) -> dict[str, object]:
        request = self.request
        return {
            "operator": request.operator,
            "locked": self.locked,
            "auditor": request.auditor,
            "at_ns": request.at,
            "reason": request.reason,
            "end_sessions": self.end_sessions,
            "request_id": request.request_id,
        }


class LockBoard(ControlBoard):
    """Every operator ever locked or unlocked on the control topic, at the request in force."""

    def __init__(self, settings: Settings) -> None:
        # Back to the epoch: a lock of any age may still be in force.
        super().__init__(settings, time.time(), "operator locks")
        self._items: dict[str, LockItem] = {}

    def current(self, unlocked_too: bool = False) -> list[LockItem]:
        """The operators locked now (and, with ``unlocked_too``, those unlocked), by name."""
        with self.reading():
            items = sorted(self._items.values(), key=lambda item: item.operator)
        return [item for item in items if unlocked_too or item.locked]

    def _take(self, key: bytes, value: bytes | None) -> None:
        if not key.startswith(OPERATOR_PREFIX):
            return
        found = self.decoded(value, self.auditors, key)
        if not isinstance(found, control.Lock | control.Unlock):
            return  # not signed by a trusted control key: no gateway obeys it
        known = self._items.get(found.operator)
        order = (found.at, found.request_id)
        if known is None or order > (known.request.at, known.request.request_id):
            self._items[found.operator] = LockItem(found)


def read_locks(settings: Settings, unlocked_too: bool = False) -> list[LockItem]:
    board = LockBoard(settings)
    try:
        return board.current(unlocked_too)
    finally:
        board.close()
