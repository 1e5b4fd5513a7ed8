"""A stored recording in pieces by time, for a player that starts anywhere at once.

A piece is a run of whole chunks: a new one begins once the one before holds
:data:`PIECE_BYTES` of recording or spans :data:`PIECE_SECONDS`, so a piece costs
about the same to send whatever the recording's size or pace. Only the chunks'
times and sizes are read to cut them (:func:`piece_map`); a piece's events are
read by its seq range (:func:`piece_events`).

The shapes are asciinema-player's segmented recording (the player vendored in
``consumer/web/static/vendor``): an index -- duration, terminal size, each
piece's start, the markers -- and per piece a snapshot (the screen at its start,
as bytes that paint it: ``sshtrail/screenstate.py``) and its events, in seconds
since the session began. The player checks that times fall inside their piece,
that a piece after the first begins exactly at its start and that the last ends
exactly at the duration; times are whole milliseconds (rounded down) so the
checks hold, and a piece begins only at a chunk whose first millisecond is past
the chunk before it.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from sshtrail.errors import InvalidError
from sshtrail.events import Event, Start
from sshtrail.exports import CastEvents, chunk_events
from sshtrail.tables import CHUNKS
from sshtrail.wire import decode_chunk

#: Bytes of stored chunks a piece holds at most (but for one chunk larger alone).
PIECE_BYTES = 512 << 10
#: Seconds a piece spans at most (but for one chunk longer alone).
PIECE_SECONDS = 60
#: The index lists at most this many markers (the player draws each on its bar).
MAX_MARKERS = 2000


@dataclass(frozen=True)
class Piece:
    """Chunks ``first_seq`` to ``last_seq`` of a session, beginning at ``start_ms``."""

    n: int
    first_seq: int
    last_seq: int
    start_ms: int


@dataclass(frozen=True)
class PieceMap:
    """A session's pieces in order, its duration in milliseconds, and for each chunk the
    milliseconds its events are moved earlier by the idle limit (0 without one)."""

    pieces: list[Piece]
    duration_ms: int
    shifts: dict[int, int] = field(default_factory=dict)
    #: (real ms of a chunk's first event, its shift) wherever the shift grows.
    steps: list[tuple[int, int]] = field(default_factory=list)
    #: (seq, stored bytes) of every chunk, in order.
    sizes: list[tuple[int, int]] = field(default_factory=list)

    def window(self, n: int, size: int) -> Piece | None:
        """The last chunks before piece ``n`` holding ``size`` bytes at least, as a piece
        (None if everything before it is less)."""
        first_seq = self.pieces[n].first_seq
        at = bisect.bisect_left(self.sizes, (first_seq, -1))
        held = 0
        for k in range(at - 1, -1, -1):
            held += self.sizes[k][1]
            if held >= size:
                return Piece(-1, self.sizes[k][0], self.sizes[at - 1][0], 0)
        return None

    def played_ms(self, real_ms: int) -> int:
        """A moment of the session (ms since its start) on the player's timeline."""
        at = bisect.bisect_right(self.steps, (real_ms, 1 << 62)) - 1
        return min(max(real_ms - (self.steps[at][1] if at >= 0 else 0), 0), self.duration_ms)


def piece_map(conn: Connection, session_id: uuid.UUID, idle_ms: int = 0) -> PieceMap:
    """The session's pieces, from its chunks' seqs, times and sizes only; ``idle_ms``
    (if not 0): every pause between chunks longer than that is cut to it."""
    query = (
        select(CHUNKS.c.seq, CHUNKS.c.t_first, CHUNKS.c.t_last, func.length(CHUNKS.c.data))
        .where(CHUNKS.c.session_id == session_id)
        .order_by(CHUNKS.c.seq)
    )
    return cut(
        (
            (int(seq), int(first), int(last), int(size or 0))
            for seq, first, last, size in conn.execute(query)
        ),
        idle_ms,
    )


def cut(chunks: Iterable[tuple[int, int, int, int]], idle_ms: int = 0) -> PieceMap:
    """Pieces of chunks given as (seq, t_first ns, t_last ns, bytes) in seq order.

    The idle limit is applied between chunks only: the recorder closes a chunk within
    about 100 ms of its first event, so no pause inside one reaches a limit (1 s at
    least)."""
    pieces: list[Piece] = []
    shifts: dict[int, int] = {}
    steps: list[tuple[int, int]] = []
    sizes: list[tuple[int, int]] = []
    first_seq = last_seq = -1
    start_ms = last_ms = held = shift = 0
    for seq, t_first, t_last, size in chunks:
        real_ms = t_first // 1_000_000
        if idle_ms and first_seq >= 0 and real_ms - shift - last_ms > idle_ms:
            shift = real_ms - last_ms - idle_ms
            steps.append((real_ms, shift))
        shifts[seq] = shift
        sizes.append((seq, size))
        begins_ms = real_ms - shift
        full = held >= PIECE_BYTES or begins_ms - start_ms >= PIECE_SECONDS * 1000
        if first_seq < 0 or (full and begins_ms > last_ms):
            if first_seq >= 0:
                pieces.append(Piece(len(pieces), first_seq, last_seq, start_ms))
                start_ms = begins_ms
            first_seq, held = seq, 0
        last_seq, held = seq, held + size
        last_ms = max(last_ms, t_last // 1_000_000 - shift, begins_ms)
    if first_seq >= 0:
        pieces.append(Piece(len(pieces), first_seq, last_seq, start_ms))
    duration_ms = max(last_ms, pieces[-1].start_ms + 1) if pieces else 1
    return PieceMap(pieces, duration_ms, shifts, steps, sizes)


def piece_events(
    conn: Connection, session_id: uuid.UUID, piece: Piece
) -> Iterator[tuple[int, Event]]:
    """(seq, event) of the piece's chunks, in order; a chunk that does not decode is left
    out (as the player and downloads leave it out)."""
    query = (
        select(CHUNKS.c.seq, CHUNKS.c.data)
        .where(
            CHUNKS.c.session_id == session_id,
            CHUNKS.c.seq >= piece.first_seq,
            CHUNKS.c.seq <= piece.last_seq,
        )
        .order_by(CHUNKS.c.seq)
    )
    result = conn.execution_options(yield_per=64).execute(query)
    stored = ((int(seq), bytes(data)) for seq, data in result)
    yield from chunk_events(stored, lambda seq, why: None)


def first_size(conn: Connection, session_id: uuid.UUID) -> tuple[int, int]:
    """(columns, rows) the session began with: its first chunk's start (80x24 unknown)."""
    query = (
        select(CHUNKS.c.data)
        .where(CHUNKS.c.session_id == session_id)
        .order_by(CHUNKS.c.seq)
        .limit(1)
    )
    data = conn.execute(query).scalar_one_or_none()
    try:
        events = decode_chunk(bytes(data)).events if data is not None else []
    except InvalidError:
        events = []
    start = events[0] if events and isinstance(events[0], Start) else None
    return ((start.cols or 80), (start.rows or 24)) if start else (80, 24)


def first_screen_ms(conn: Connection, session_id: uuid.UUID) -> int:
    """When the session's first screen is shown: the end of the first chunk after its
    start (the first output the gateway batched, its banner and prompt) and a
    millisecond, so the still has it whatever the rounding; 0 if none."""
    query = (
        select(CHUNKS.c.t_last)
        .where(CHUNKS.c.session_id == session_id, CHUNKS.c.seq > 0)
        .order_by(CHUNKS.c.seq)
        .limit(1)
    )
    found = conn.execute(query).scalar_one_or_none()
    return int(found) // 1_000_000 + 1 if found is not None else 0


def _seconds(ms: int) -> float:
    return ms / 1000


def index(
    found: PieceMap, url: str, size: tuple[int, int], markers: list[tuple[int, str]]
) -> dict[str, Any]:
    """The segmented recording's index: piece ``n`` is at ``url.format(n=n)``;
    ``markers`` are (ms on the player's timeline, label) in time order."""
    return {
        "version": 1,
        "duration": _seconds(found.duration_ms),
        "term": {"cols": size[0], "rows": size[1]},
        "segments": [
            {"start": _seconds(p.start_ms), "url": url.format(n=p.n)} for p in found.pieces
        ],
        "markers": [[_seconds(ms), label] for ms, label in markers[:MAX_MARKERS]],
    }


def segment(
    found: PieceMap,
    piece: Piece,
    events: Iterable[tuple[int, Event]],
    *,
    snapshot: tuple[int, int, str],
    markers: list[tuple[int, str]],
    with_input: bool,
) -> dict[str, Any]:
    """One piece as the player loads it: the screen at its start (columns, rows, the
    bytes that paint it), then its events, the index's markers among them."""
    last = piece.n == len(found.pieces) - 1
    end_ms = found.duration_ms if last else found.pieces[piece.n + 1].start_ms
    converter = CastEvents(with_input)
    lines: list[list[Any]] = [[_seconds(piece.start_ms), "o", ""]]
    kept = [
        (ms, label)
        for ms, label in markers[:MAX_MARKERS]
        if piece.start_ms <= ms < end_ms or (last and ms == end_ms)
    ]
    pending = iter(kept)
    marker = next(pending, None)
    for seq, event in events:
        converted = converter.convert(event)
        if converted is None or converted[1][0] == "m":  # only the index's markers
            continue
        ms = event.t // 1_000_000 - found.shifts.get(seq, 0)
        ms = min(max(ms, piece.start_ms), end_ms - (0 if last else 1))
        while marker is not None and marker[0] <= ms:
            lines.append([_seconds(marker[0]), "m", marker[1]])
            marker = next(pending, None)
        lines.append([_seconds(ms), *converted[1]])
    while marker is not None:
        lines.append([_seconds(marker[0]), "m", marker[1]])
        marker = next(pending, None)
    if last:
        lines.append([_seconds(found.duration_ms), "o", ""])
    cols, rows, paint = snapshot
    return {"snapshot": {"cols": cols, "rows": rows, "init": paint}, "events": lines}
