"""A pyte screen that draws plain text and scrolls in bulk: the index's emulator, made fast.

pyte draws a character at a time (a namedtuple per cell) and scrolls by
moving every row up one, which on a 500-row screen makes each line of output
cost hundreds of dictionary operations -- most of the index's cost.
:class:`FastScreen` draws runs of printable ASCII a row at a time, scrolls
the whole screen by moving an offset (:class:`Rows`), and keeps no record of
changed rows, which nothing reads. Everything else is pyte's own, and the
screen comes out cell for cell as pyte's would
(``tests/unit/test_terminal.py``). What is *read* off the screen is
``sshtrail/terminal.py``'s business, through the hooks it overrides.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter
from typing import Any

import pyte
from pyte import modes
from pyte.screens import StaticDefaultDict

_DATA = attrgetter("data")


class NoDirty(set[int]):
    """pyte's record of changed rows, which nothing here reads: kept empty, for free."""

    def add(self, _y: int) -> None:
        pass

    def update(self, *_rows: Any) -> None:
        pass


class Rows:
    """pyte's screen buffer (row -> cells) with whole-screen scrolling in O(1).

    A row ``y`` is kept under ``y + offset``, so scrolling moves the offset. Only
    what pyte does with its buffer is provided: rows made on first use, as its
    ``defaultdict`` does.
    """

    def __init__(self, screen: pyte.Screen) -> None:
        self._screen = screen
        self._rows: dict[int, Any] = {}
        self._offset = 0
        #: Every row of the screen exists but at most the top or the bottom one -- what
        #: pyte's scrolling leaves (it touches every row), and what ``in`` tells
        #: ``insert_lines``/``delete_lines``. Kept so at O(1) per scroll once true.
        self._dense = False

    def __getitem__(self, y: int) -> Any:
        key = y + self._offset
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = StaticDefaultDict(self._screen.default_char)
        return row

    def __setitem__(self, y: int, row: Any) -> None:
        self._rows[y + self._offset] = row

    def __contains__(self, y: object) -> bool:
        return isinstance(y, int) and y + self._offset in self._rows

    def get(self, y: int) -> Any:
        """Row ``y`` if it was made, without making it (reading must not change what
        ``in`` answers pyte)."""
        return self._rows.get(y + self._offset)

    def pop(self, y: int, default: Any = None) -> Any:
        self._dense = False
        return self._rows.pop(y + self._offset, default)

    def values(self) -> Iterable[Any]:
        return self._rows.values()

    def clear(self) -> None:
        self._rows.clear()
        self._offset = 0
        self._dense = False

    def _touch(self, rows: Iterable[int]) -> None:
        for y in rows:
            self[y]  # made, as pyte's defaultdict makes what it reads

    def scroll_up(self, lines: int) -> None:
        """The top row leaves the screen, the others move up, the bottom one is blank."""
        self._touch((lines - 1,) if self._dense else range(1, lines))
        self._rows.pop(self._offset, None)
        self._offset += 1
        self._rows.pop(self._offset + lines - 1, None)
        self._dense = True

    def scroll_down(self, lines: int) -> None:
        """The bottom row leaves the screen, the others move down, the top one is blank."""
        self._touch((0,) if self._dense else range(lines - 1))
        self._rows.pop(self._offset + lines - 1, None)
        self._offset -= 1
        self._rows.pop(self._offset, None)
        self._dense = True


class _Cells(dict[str, Any]):
    """The cell of each character drawn with one set of attributes, made once."""

    def __init__(self, attrs: Any) -> None:
        super().__init__()
        self.attrs = attrs

    def __missing__(self, char: str) -> Any:
        cell = self[char] = self.attrs._replace(data=char)
        return cell


class FastScreen(pyte.Screen):
    """pyte's screen with bulk drawing and O(1) scrolling; rows read as text cheaply.

    Its buffer is a :class:`Rows`: a subclass that swaps buffers (an alternate
    screen) makes the new one with ``Rows(self)``.
    """

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.buffer = Rows(self)  # type: ignore[assignment]
        self.dirty = NoDirty()
        self._cells: dict[Any, _Cells] = {}

    def scrolling_off(self) -> None:
        """Called before the whole screen scrolls up: row 0 is about to leave it."""

    def draw(self, data: str) -> None:
        text = data.translate(self.g1_charset if self.charset else self.g0_charset)
        if text.isascii() and text.isprintable() and modes.IRM not in self.mode:
            self._draw_plain(text)
        else:
            super().draw(data)

    def _draw_plain(self, text: str) -> None:
        """What pyte's ``draw`` does with printable ASCII (one cell each), a row's
        worth at a time."""
        cursor, columns = self.cursor, self.columns
        cells = self._cells.get(cursor.attrs)
        if cells is None:
            if len(self._cells) > 256:
                self._cells.clear()
            cells = self._cells[cursor.attrs] = _Cells(cursor.attrs)
        done, size = 0, len(text)
        while done < size:
            if cursor.x >= columns:
                if modes.DECAWM not in self.mode:  # each character overwrites the last
                    self.buffer[cursor.y][columns - 1] = cells[text[-1]]
                    cursor.x = columns
                    return
                self.carriage_return()
                self.linefeed()
            x = cursor.x
            take = min(columns - x, size - done)
            row = self.buffer[cursor.y]
            cells_now = map(cells.__getitem__, text[done : done + take])
            row.update(zip(range(x, x + take), cells_now, strict=True))
            cursor.x = x + take
            done += take

    def index(self) -> None:
        if self.cursor.y == self.lines - 1 and self._whole_screen_scrolls():
            self.scrolling_off()
            self.buffer.scroll_up(self.lines)  # type: ignore[attr-defined]
        else:
            super().index()

    def reverse_index(self) -> None:
        if self.cursor.y == 0 and self._whole_screen_scrolls():
            self.buffer.scroll_down(self.lines)  # type: ignore[attr-defined]
        else:
            super().reverse_index()

    def _whole_screen_scrolls(self) -> bool:
        margins = self.margins
        return margins is None or (margins.top == 0 and margins.bottom == self.lines - 1)

    def row(self, y: int) -> str:
        """The text of row ``y`` as displayed (wide characters once)."""
        return self.text_of(self.buffer.get(y) or {})

    def text_of(self, cells: dict[int, Any]) -> str:
        """The text of a row's cells; cells never written are blanks, and only the
        written span is walked."""
        if not cells:
            return ""
        blank = self.default_char
        span = range(min(max(cells) + 1, self.columns))
        return "".join(map(_DATA, map(cells.get, span, repeat(blank))))
