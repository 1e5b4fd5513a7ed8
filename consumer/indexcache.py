"""The index group's open sessions in memory: each one's terminal, as its transaction left it.

A session's :class:`~sshtrail.indexsession.IndexedSession` is kept between
batches while its state matches what is committed, up to
:data:`CACHE_SESSIONS` of them, least recently used out first; otherwise it
is rebuilt from the index (``search_sessions`` and the chunks kept in the
backlog, :mod:`consumer.indexbacklog`), so that memory never needs to be
right, only quick.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from consumer.indexbacklog import Backlog
from sshtrail.indexsession import IndexedSession

log = logging.getLogger(__name__)

#: Open sessions whose terminal stays in memory; others are rebuilt on demand.
CACHE_SESSIONS = 2000


class SessionCache:
    """Open sessions' states, least recently used first."""

    def __init__(self, backlog: Backlog) -> None:
        self._backlog = backlog
        self._open: OrderedDict[uuid.UUID, IndexedSession] = OrderedDict()

    def get(self, conn: Connection, session_id: uuid.UUID, row: Any) -> IndexedSession:
        """The session's state as committed (``row`` of ``search_sessions``, None if it
        has none): from memory if it matches, else replayed from the backlog."""
        next_seq = row["next_seq"] if row is not None else 0
        cached = self._open.get(session_id)
        if cached is not None and cached.next_seq == next_seq and not cached.ended:
            self._open.move_to_end(session_id)
            return cached
        session = IndexedSession(session_id)
        if next_seq:
            count = 0
            for chunk in self._backlog.indexed(conn, session_id, next_seq):
                session.apply(chunk)  # its documents are already stored
                count += 1
            session.next_seq = next_seq
            session.restore_ordinals(row["ordinals"])
            if session.exit_status is None:
                session.exit_status = row["exit_status"]
            session.last_digest = row["last_digest"]
            session.flagged_before = bool(row["uncertain_prompt"])
            log.info("session %s: terminal rebuilt from %d kept chunks", session_id, count)
        self._open[session_id] = session
        return session

    def drop(self, sessions: Iterable[uuid.UUID]) -> None:
        """Forget ``sessions`` (memory may be ahead of what committed, or they are done)."""
        for session_id in sessions:
            self._open.pop(session_id, None)

    def committed(self, sessions: Iterable[uuid.UUID]) -> None:
        """After a transaction of ``sessions`` committed: the ended ones go, and the
        least recently used beyond :data:`CACHE_SESSIONS`."""
        for session_id in sessions:
            session = self._open.get(session_id)
            if session is not None and session.ended:
                del self._open[session_id]
        while len(self._open) > CACHE_SESSIONS:
            self._open.popitem(last=False)
