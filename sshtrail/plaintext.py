"""Terminal output in bulk, made cheap before a terminal emulator sees it.

pyte, the emulator the index reads screens through, costs per character
(about 0.6 MB/s) and per scrolled row. A session's output is mostly plain
text, and an operator can send pathological output on purpose (a flood of
zeros, of screen clears, a line with no end). What is done here keeps the
emulator's screen as it would have been while taking it the cheap way:

* NUL bytes, which a terminal ignores, are dropped;
* an idempotent escape sequence repeated back to back (a clear, a cursor
  home, an attribute) is kept once;
* in a long run of complete lines, only the lines that stay on the screen go
  through the emulator -- the others are taken as lines directly
  (:func:`split_lines`);
* of a long run of text with no line end, only the rows that stay on the
  screen are drawn (:func:`skip_of_run`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Sequences whose repetition changes nothing: ED, EL, CUP/HVP, SGR (and a pair of them).
_REPEATED: Final = re.compile(rb"((?:\x1b\[[0-9;?]*[JKHfm]){1,2})\1+")
#: Complete lines of plain ASCII text ending in CR LF, as a PTY sends them.
_LINES: Final = re.compile(rb"(?:[\x20-\x7e\t]*\r\n)+")
#: A run of plain ASCII text with nothing else in it.
_RUN: Final = re.compile(rb"[\x20-\x7e]+")


def prepared(data: bytes) -> bytes:
    """``data`` without what changes nothing on screen (NULs, repeats of idempotent
    sequences)."""
    if b"\x00" in data:
        data = data.replace(b"\x00", b"")
    if data.count(b"\x1b[") > 8:
        data = _REPEATED.sub(rb"\1", data)
    return data


@dataclass(frozen=True, slots=True)
class Lines:
    """``data`` cut around a long run of complete lines: ``head`` and ``tail`` go
    through the emulator, ``lines`` (decoded, tabs expanded) are taken as they are."""

    head: bytes
    lines: list[str]
    tail: bytes


def split_lines(data: bytes, rows: int) -> Lines | None:
    """Cut ``data`` if it holds more complete plain lines in a row than the screen
    shows twice over, starting right after a line end (so the emulator is at the
    start of a line, outside any sequence); None when there is nothing to gain."""
    start = data.find(b"\r\n")
    if start < 0 or data.find(b"\x1b", 0, start) >= 0:
        return None
    start += 2
    match = _LINES.match(data, start)
    if match is None:
        return None
    run = match.group()
    count = run.count(b"\r\n")
    if count <= 2 * rows:
        return None
    kept = rows  # the lines that end on the screen go through the emulator
    cut = start
    for _ in range(count - kept):
        cut = data.index(b"\r\n", cut) + 2
    lines = [
        line.decode("ascii").expandtabs(8).rstrip() for line in data[start:cut].split(b"\r\n")[:-1]
    ]
    return Lines(data[:start], lines, data[cut:])


@dataclass(frozen=True, slots=True)
class Skip:
    """A run of ``data`` too long to draw: draw ``before`` (which ends inside the run),
    take ``skipped`` as text where the cursor then is, draw ``after``."""

    before: bytes
    skipped: str
    after: bytes


def skip_of_run(data: bytes, columns: int, rows: int) -> Skip | None:
    """Where to skip drawing in the first plain run of ``data`` longer than the screen
    holds twice over. What is skipped is a whole number of rows, so the cursor ends
    where drawing it all would leave it."""
    screen = columns * rows
    for match in _RUN.finditer(data):
        if match.end() - match.start() <= 2 * screen + columns:
            continue
        if data.find(b"\x1b", 0, match.start()) >= 0:
            return None  # the emulator may be inside a sequence: not worth the doubt
        start = match.start() + columns  # a row drawn first: the cursor's row is begun
        length = ((match.end() - start - screen) // columns) * columns
        if length <= 0:
            return None
        return Skip(
            data[:start], data[start : start + length].decode("ascii"), data[start + length :]
        )
    return None
