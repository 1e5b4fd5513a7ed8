"""A recording as a file: asciicast, raw output or JSON events, written as it is read.

``sshtrail export`` and the web console's downloads and player both use
these generators over a session's stored chunks in order, so neither holds a
whole recording in memory: each yields one line (or one output event's
bytes) at a time.
"""

from __future__ import annotations

import base64
import codecs
import heapq
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import msgspec

from sshtrail.errors import InvalidError
from sshtrail.events import (
    End,
    Event,
    Input,
    MaskedInput,
    Notice,
    Output,
    Resize,
    SealedInput,
    Start,
)
from sshtrail.wire import decode_chunk

Format = Literal["asciicast", "raw", "json"]
#: Told of each chunk that does not decode: its seq and why. It is skipped.
Skipped = Callable[[int, str], None]

#: The gateway notices a replay marks on its timeline: the command policy's decisions and
#: a moderated session's joins, leaves and pauses.
MARKED = ("policy", "moderation")


def chunk_events(
    stored: Iterable[tuple[int, bytes]], skipped: Skipped
) -> Iterator[tuple[int, Event]]:
    """(seq, event) of stored chunks in order."""
    for seq, data in stored:
        try:
            chunk = decode_chunk(data)
        except InvalidError as exc:
            skipped(seq, str(exc))
            continue
        for event in chunk.events:
            yield seq, event


def export_lines(
    kind: Format, stored: Iterable[tuple[int, bytes]], skipped: Skipped
) -> Iterator[bytes]:
    """The export of ``kind``, piece by piece (lines end with ``\\n``)."""
    events = chunk_events(stored, skipped)
    if kind == "raw":
        for _seq, event in events:
            if isinstance(event, Output):
                yield event.data
    elif kind == "json":
        for seq, event in events:
            record = {
                "seq": seq,
                "kind": type(event).__struct_config__.tag,
                **msgspec.structs.asdict(event),
            }
            yield msgspec.json.encode(_base64(record)) + b"\n"
    else:
        for line in asciicast(event for _seq, event in events):
            yield line + b"\n"


def asciicast(
    events: Iterable[Event],
    *,
    markers: Iterable[tuple[float, str]] = (),
    with_input: bool = False,
) -> Iterator[bytes]:
    """asciinema v2: a header, then ``[seconds, "o", text]`` per output event.

    Output is decoded incrementally, so a character split between two events
    is written whole and the text equals the raw bytes wherever they are
    UTF-8. ``markers`` (seconds, label; in time order) become ``"m"`` events
    (the web player shows commands so), and so does each command-policy decision
    (docs/policy.md). ``with_input`` adds what the
    operator typed as ``"i"`` events and masked (never echoed) input as a
    marker saying how many bytes it was -- never what they were.
    """
    stream = iter(events)
    first = next(stream, None)
    start = first if isinstance(first, Start) else None
    yield cast_header(start)
    rest: Iterable[Event] = stream if first is None or start is not None else _chain(first, stream)
    lines = _event_lines(rest, with_input)
    timed = heapq.merge(lines, ((t, ["m", label]) for t, label in markers), key=lambda x: x[0])
    for t, (code, text) in timed:
        yield msgspec.json.encode([t, code, text])


def _chain(first: Event, rest: Iterator[Event]) -> Iterator[Event]:
    yield first
    yield from rest


def cast_header(start: Start | None) -> bytes:
    """The asciicast v2 header line of a session that began with ``start``."""
    header: dict[str, Any] = {
        "version": 2,
        "width": (start.cols if start else 0) or 80,
        "height": (start.rows if start else 0) or 24,
    }
    if start is not None:
        header["timestamp"] = start.started_at // 1_000_000_000
        header["env"] = {"TERM": start.term or "dumb"}
        header["title"] = f"{start.operator}@{start.target}"
    return msgspec.json.encode(header)


class CastEvents:
    """Events to asciicast ``(seconds, [code, text])``, one at a time: the output's
    UTF-8 decoded across events (the web console's live view feeds it as chunks come)."""

    def __init__(self, with_input: bool = False) -> None:
        self._with_input = with_input
        self._output = codecs.getincrementaldecoder("utf-8")("replace")
        self._typed = codecs.getincrementaldecoder("utf-8")("replace")

    def convert(self, event: Event) -> tuple[float, list[str]] | None:
        t = event.t / 1e9
        if isinstance(event, Output):
            text = self._output.decode(event.data)
            return (t, ["o", text]) if text else None
        if isinstance(event, Resize):
            return t, ["r", f"{event.cols}x{event.rows}"]
        if isinstance(event, End):
            rest = self._output.decode(b"", final=True)
            return (t, ["o", rest]) if rest else None
        if isinstance(event, Notice) and event.code in MARKED:  # a marker on the timeline
            return t, ["m", f"{event.code}: {event.text}"[:200]]
        if not self._with_input:
            return None
        if isinstance(event, Input):
            text = self._typed.decode(event.data)
            return (t, ["i", text]) if text else None
        if isinstance(event, MaskedInput | SealedInput):
            return t, ["m", f"masked input: {event.count} bytes, not echoed"]
        return None


def _event_lines(events: Iterable[Event], with_input: bool) -> Iterator[tuple[float, list[str]]]:
    converter = CastEvents(with_input)
    for event in events:
        line = converter.convert(event)
        if line is not None:
            yield line


def _base64(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: base64.b64encode(value).decode() if isinstance(value, bytes) else value
        for key, value in record.items()
    }
