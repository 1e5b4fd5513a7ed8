"""Finding the chunks a database refuses, so that they alone are quarantined.

When a batch's transaction fails with an
:class:`~sshtrail.errors.UnstorableError`, the batch is written again one
session at a time, and a session that still fails one chunk at a time in
seq order. A chunk refused on its own is at fault: it becomes a dead letter
with the database's error, and its session is marked quarantined. Everything
else of the batch is written as usual, so one session's content cannot stop
the storing of another's (docs/architecture.md, guarantee 6).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from consumer.messages import Received, Rejected
from consumer.writer import Writer, Written
from sshtrail.errors import UnstorableError

log = logging.getLogger(__name__)

#: Runs an attempt until it succeeds (retrying what is retryable); None when stopping.
Retrying = Callable[[Callable[[], Any], str], Any]


@dataclass(slots=True)
class Isolated:
    """What became of a refused batch."""

    written: Written = field(default_factory=lambda: Written(0, 0))
    stored: list[Received] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    sessions: set[uuid.UUID] = field(default_factory=set)


def isolate(
    chunks: list[Received], writer: Writer, retrying: Retrying, topic: str
) -> Isolated | None:
    """Write ``chunks`` session by session, then chunk by chunk where refused.

    Returns None if the runner is stopping (nothing may be committed then).
    """
    outcome = Isolated()
    by_session: dict[uuid.UUID, list[Received]] = {}
    for received in chunks:
        by_session.setdefault(received.chunk.session_id, []).append(received)
    for session_id, mine in by_session.items():
        try:
            written = retrying(partial(writer.write, mine), "write")
            outcome.stored.extend(mine)
        except UnstorableError:
            written = _one_by_one(
                session_id,
                chunks=mine,
                writer=writer,
                retrying=retrying,
                outcome=outcome,
                topic=topic,
            )
        if written is None:
            return None
        outcome.written += written
    return outcome


def _one_by_one(
    session_id: uuid.UUID,
    *,
    chunks: list[Received],
    writer: Writer,
    retrying: Retrying,
    outcome: Isolated,
    topic: str,
) -> Written | None:
    total = Written(0, 0)
    refused: list[tuple[Received, UnstorableError]] = []
    for received in sorted(chunks, key=lambda r: r.chunk.seq):
        try:
            written = retrying(partial(writer.write, [received]), "write")
        except UnstorableError as exc:
            refused.append((received, exc))
            continue
        if written is None:
            return None
        total += written
        outcome.stored.append(received)
    if refused:
        reason = f"the database refused chunk {refused[0][0].chunk.seq}: {refused[0][1].reason}"
        log.error("session %s quarantined: %s", session_id, reason)

        def quarantine() -> bool:
            writer.quarantine(session_id, reason, [r for r, _ in refused])
            return True

        if retrying(quarantine, "quarantine") is None:
            return None
        outcome.sessions.add(session_id)
        for received, error in refused:
            chunk = received.chunk
            error.session_id, error.seq = str(chunk.session_id), chunk.seq
            error.partition, error.offset = received.partition, received.offset
            key = str(chunk.session_id).encode()
            outcome.rejected.append(
                Rejected(topic, received.partition, received.offset, key, chunk.raw, error)
            )
    return total
