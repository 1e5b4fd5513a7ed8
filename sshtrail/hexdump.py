"""A forwarded connection's bytes as lines of hex and printable text, a page at a time.

A connection forwarded through the gateway (``ssh -L``, ``direct-tcpip``)
carried bytes for some other program, not for a terminal: the console shows
them as ``hexdump -C`` would, each line the bytes of one direction, with
where it starts in that direction's stream and when it crossed. A page is a
number of bytes of both directions together, so a page is the same size
however the bytes were cut into events, and a line never holds bytes of two
events (the arrow and time would be wrong for some of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sshtrail.events import Event, Input, Output

#: Bytes on one line.
WIDTH = 16
#: Bytes of both directions on one page (a multiple of :data:`WIDTH`).
PAGE_BYTES = 4096
#: Which way the bytes went, as the page names it.
TOWARDS, BACK = "to destination", "back"


@dataclass(frozen=True, slots=True)
class HexLine:
    t: int  # ns since the session started
    direction: str  # TOWARDS or BACK
    offset: int  # where the line starts in its direction's stream
    hex: str
    text: str  # printable ASCII as it is, every other byte as "."


@dataclass(frozen=True, slots=True)
class HexPage:
    lines: list[HexLine]
    #: Whether bytes follow this page.
    more: bool


def printable(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in data)


def lines(events: Iterable[Event]) -> Iterator[HexLine]:
    """Every line of the connection's bytes, in recorded order (standard error, which a
    forwarded connection has none of, is left out with it)."""
    offsets = {TOWARDS: 0, BACK: 0}
    for event in events:
        if isinstance(event, Input):
            direction = TOWARDS
        elif isinstance(event, Output) and not event.stderr:
            direction = BACK
        else:
            continue
        data = bytes(event.data)
        for at in range(0, len(data), WIDTH):
            piece = data[at : at + WIDTH]
            yield HexLine(event.t, direction, offsets[direction], piece.hex(" "), printable(piece))
            offsets[direction] += len(piece)


def page(events: Iterable[Event], number: int, size: int = PAGE_BYTES) -> HexPage:
    """Page ``number`` (from 1): the lines whose first byte is among bytes
    ``(number - 1) * size`` up to ``number * size`` of both directions together."""
    start, end = (number - 1) * size, number * size
    shown: list[HexLine] = []
    total = 0
    more = False
    for line in lines(events):
        if total >= end:
            more = True
            break
        length = (len(line.hex) + 1) // 3
        if total >= start:
            shown.append(line)
        total += length
    return HexPage(shown, more)
