"""The screen a session's reader feeds: pyte's parser made tolerant, and a screen that
reports to its reader what the reading rules of :mod:`sshtrail.terminal` need.

Apart from the rules themselves because it is the other side of one narrow seam,
:class:`ScreenReader`: the screen says *that* a line feed, a carriage return, a
switch of screens, an erase or a row scrolled off happened, and the reader decides
what that means for what the person saw. The screen draws and scrolls in bulk
(``sshtrail/fastscreen.py``); the tolerant parser serves other readers of a
session's screen too (``sshtrail/screenstate.py``).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

import pyte

from sshtrail.fastscreen import FastScreen, Rows


class ScreenReader(Protocol):
    """What :class:`ReadingScreen` tells its reader, as the output is drawn."""

    #: Set by the screen when text is drawn; the reader clears it when it reads.
    drawn: bool

    def entering_alternate(self) -> None: ...
    def leaving_alternate(self) -> None: ...
    def clearing(self) -> None: ...
    def row_removed(self, row: str) -> None: ...
    def scrolled_off(self, row: str) -> None: ...
    def linefeed(self, y: int, soft: bool) -> None: ...
    def carriage_return(self, y: int) -> None: ...


#: Private modes that switch to (set) and from (reset) the alternate screen.
ALTERNATE_MODES = frozenset({47, 1047, 1049})


class TolerantStream(pyte.ByteStream):
    """pyte's parser, tolerant: a control sequence its screen cannot apply (a private
    SGR ``ESC[?4m``, too many parameters ``ESC[1;2;3H``) is dropped, as a terminal
    ignores what it does not understand. pyte raises instead, which would stop
    the index reading the session there -- the rest of it unsearchable."""

    def _send_to_parser(self, data: str) -> bool | None:
        try:
            return super()._send_to_parser(data)
        except (TypeError, ValueError, IndexError, KeyError):
            return self._taking_plain_text  # pyte has reset its parser


class ReadingScreen(FastScreen):
    """The session's screen (drawn fast: ``sshtrail/fastscreen.py``), reporting to its
    reader (:class:`sshtrail.terminal.Terminal`) what the reading rules need: line
    feeds (telling soft wraps from real ones), carriage returns, switches to and from
    the alternate screen, erasing, and rows that scroll off."""

    def __init__(self, columns: int, lines: int, terminal: ScreenReader) -> None:
        super().__init__(columns, lines)
        self._terminal = terminal
        self._drawing = False
        #: On the alternate screen: the main screen's rows and cursor, to go back to.
        self.main: tuple[Any, Any] | None = None

    def set_mode(self, *modes_: int, **kwargs: Any) -> None:
        if others := self._other_modes(modes_, kwargs, alternate=True):
            super().set_mode(*others, **kwargs)

    def reset_mode(self, *modes_: int, **kwargs: Any) -> None:
        if others := self._other_modes(modes_, kwargs, alternate=False):
            super().reset_mode(*others, **kwargs)

    def _other_modes(
        self, modes_: tuple[int, ...], kwargs: dict[str, Any], alternate: bool
    ) -> tuple[int, ...]:
        """Switch screens if ``modes_`` (set: ``alternate``; reset: not) name the
        alternate screen; the modes left for pyte."""
        if kwargs.get("private") and ALTERNATE_MODES.intersection(modes_):
            self._switch(alternate)
            return tuple(m for m in modes_ if m not in ALTERNATE_MODES)
        return modes_

    def _switch(self, alternate: bool) -> None:
        """To the alternate screen (blank, the main one kept) or back (as it was)."""
        if alternate == (self.main is not None):
            return
        if alternate:
            self._terminal.entering_alternate()
            self.main = (self.buffer, copy.copy(self.cursor))
            self.buffer = Rows(self)  # type: ignore[assignment]
        else:
            self._terminal.leaving_alternate()
            assert self.main is not None
            (self.buffer, self.cursor), self.main = self.main, None
            self.ensure_hbounds()
            self.ensure_vbounds()

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        at_home = self.cursor.x == 0 and self.cursor.y == 0
        if how in (2, 3) or (how == 0 and at_home):
            self._terminal.clearing()
        super().erase_in_display(how, *args, **kwargs)

    def delete_lines(self, count: int | None = None) -> None:
        """``CSI M``: the rows from the cursor's down are gone; what they showed was seen
        (a prompt that deletes the lines above it cannot erase them unread)."""
        self._removing(self.cursor.y, count or 1)
        super().delete_lines(count)

    def insert_lines(self, count: int | None = None) -> None:
        """``CSI L``: rows pushed off the bottom of the scrolling region are gone."""
        bottom = self.margins.bottom if self.margins else self.lines - 1
        self._removing(max(self.cursor.y, bottom - (count or 1) + 1), count or 1)
        super().insert_lines(count)

    def _removing(self, first: int, count: int) -> None:
        top, bottom = (
            (self.margins.top, self.margins.bottom) if self.margins else (0, self.lines - 1)
        )
        if top <= self.cursor.y <= bottom:
            for y in range(first, min(first + count, bottom + 1)):
                self._terminal.row_removed(self.row(y))

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        if self.main is not None and self.cursor.x == 0 and how in (0, 2):
            self._terminal.scrolled_off(self.row(self.cursor.y))  # a row replaced whole
        super().erase_in_line(how, private)

    def draw(self, data: str) -> None:
        self._terminal.drawn = True
        self._drawing = True  # a line feed from inside draw() is an automatic wrap
        try:
            super().draw(data)
        finally:
            self._drawing = False

    def scrolling_off(self) -> None:
        if self.main is not None:
            self._terminal.scrolled_off(self.row(0))

    def linefeed(self) -> None:
        self._terminal.linefeed(self.cursor.y, self._drawing)
        super().linefeed()

    def carriage_return(self) -> None:
        if not self._drawing:
            self._terminal.carriage_return(self.cursor.y)
        super().carriage_return()
