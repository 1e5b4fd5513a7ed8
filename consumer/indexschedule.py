"""How an index transaction's time is shared: cheap sessions first, costly ones in what is left.

Every session of a batch gets a slice (:data:`SLICE_S`) first, so that the
cheap ones are done at once; then the costly ones share what is left of the
batch's budget, cheapest first. What a session has cost lately is measured
as it is indexed, and the time the database will take to store the
documents made so far counts against the budget too: a flood of unique text
costs more there than in the emulator. Chunks left when the time is up wait
in the backlog (:mod:`consumer.indexbacklog`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sshtrail.indexsession import IndexedSession
from sshtrail.wire import Chunk

#: Work per batch; what is left waits in the backlog for the writer's ``background``.
BATCH_BUDGET_S = 1.0
#: Work each session of a batch gets first, before the costly ones share the rest.
SLICE_S = 0.02
#: Seconds the database takes to index a character of document text, until measured.
INSERT_S_PER_CHAR = 1e-6


class Documents:
    """The documents a transaction writes, and the length of their text."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.chars = 0

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        self.chars += sum(len(row["text"]) for row in rows)


@dataclass(slots=True)
class Work:
    """One session's part of a transaction: the chunks to index, how far it got."""

    session: IndexedSession
    new: list[Chunk]  # arrived in this batch
    todo: list[Chunk]  # to index, in order (those waiting before, then the new ones)
    done: int = 0
    failed: bool = False

    @property
    def left(self) -> int:
        return 0 if self.failed else len(self.todo) - self.done


class Schedule:
    """What each session has cost lately, and the order and time it gets by that."""

    def __init__(self) -> None:
        #: Seconds each session cost lately: the cheap ones go first.
        self._cost: dict[uuid.UUID, float] = {}
        #: Measured cost of storing documents, per character of their text.
        self._insert_s_per_char = INSERT_S_PER_CHAR

    def cheapest_first(self, sessions: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        return sorted(sessions, key=lambda sid: self._cost.get(sid, 0.0))

    def run(
        self,
        work: list[Work],
        deadline: float,
        documents: Documents,
        failed: Callable[[Work, Exception], None],
    ) -> None:
        """Index ``work`` (in the order of :meth:`cheapest_first`) until ``deadline``:
        a slice each, then the rest by cost. ``failed`` is told of a session whose
        chunks the emulator failed on; it is not indexed further."""
        for item in work:
            self._index(item, time.monotonic() + SLICE_S, documents, failed)
        for item in sorted(work, key=lambda w: self._cost.get(w.session.session_id, 0.0)):
            if item.left:
                self._index(item, deadline, documents, failed)

    def stored(self, chars: int, seconds: float) -> None:
        """Storing documents of ``chars`` characters took ``seconds``."""
        if chars > 10_000:  # enough to measure
            self._insert_s_per_char = (self._insert_s_per_char + seconds / chars) / 2

    def forget(self, session_id: uuid.UUID) -> None:
        self._cost.pop(session_id, None)

    def _index(
        self,
        item: Work,
        deadline: float,
        documents: Documents,
        failed: Callable[[Work, Exception], None],
    ) -> None:
        """Apply the item's chunks in order until ``deadline`` (one at least), counting
        the time the documents made so far will take to store."""
        session = item.session
        started = time.monotonic()
        try:
            while item.left:
                storing = documents.chars * self._insert_s_per_char
                if item.done and time.monotonic() + storing >= deadline:
                    break  # the rest waits in the backlog
                chunk = item.todo[item.done]
                if chunk.seq >= session.next_seq and not session.ended:
                    documents.add(session.apply(chunk))
                item.done += 1
        except Exception as exc:  # the emulator failed on this session's output
            item.failed = True
            failed(item, exc)
        finally:
            spent = time.monotonic() - started
            self._cost[session.session_id] = spent + self._cost.get(session.session_id, 0.0) / 2
