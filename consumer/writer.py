"""What a consumer group writes to: the :class:`Writer` protocol the runner calls.

The store (``consumer/store.py``) and the index (``consumer/indexer.py``)
implement it; the runner (``consumer/runner.py``) calls it. Neither side
imports the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from consumer.messages import Received, Refused


@dataclass(frozen=True, slots=True)
class Written:
    """What a writer did with a batch."""

    written: int  # chunks new to the destination
    duplicates: int  # chunks it already had

    def __add__(self, other: Written) -> Written:
        return Written(self.written + other.written, self.duplicates + other.duplicates)


class Writer(Protocol):
    """A consumer group's destination. Called from the runner's thread only."""

    def write(self, chunks: Sequence[Received]) -> Written:
        """Write ``chunks`` in one transaction, idempotently on (session id, seq).

        Raises :class:`~sshtrail.errors.RetryableError` when the database is away
        (the runner retries the same chunks later, partitions paused), and
        :class:`~sshtrail.errors.UnstorableError` when the database refuses the
        data itself (the runner finds the chunks at fault and quarantines them).
        """
        ...

    def refuse(self, refused: Sequence[Refused]) -> None:
        """Chunks no trusted gateway signed, never written as their session's: kept as
        evidence where the writer keeps anything (idempotently on partition and
        offset), logged by the runner. May raise ``RetryableError``."""
        ...

    def quarantine(self, session_id: uuid.UUID, reason: str, chunks: Sequence[Received]) -> None:
        """Mark a session quarantined: ``chunks`` of it could not be written
        (they go to the dead-letter topic). May raise ``RetryableError``."""
        ...

    def background(self, budget_s: float) -> bool:
        """Work left from earlier batches (the index's deferred chunks), for about
        ``budget_s``; whether some is left. Called between batches; may raise
        ``RetryableError``."""
        ...

    def housekeeping(self, settled: frozenset[int]) -> None:
        """Periodic work between batches; ``settled`` are the partitions this member
        owns and has written up to their log end (nothing of theirs waits unread).
        May raise ``RetryableError``."""
        ...
