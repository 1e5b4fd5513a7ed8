"""A session's screen at a moment, as the bytes that paint it again: what a player
starting in the middle of a recording shows first.

The recording's output is fed to the index's emulator (pyte's screen drawn fast,
``sshtrail/fastscreen.py``, behind the same tolerant parser as the index's), and
:meth:`ScreenState.paint` writes its cells back as plain escape sequences -- clear,
each row with its colours and attributes, the cursor -- which any terminal (here
asciinema-player's) turns into the same screen. Scrollback, the alternate screen's
saved main screen and the character sets are not carried: the player starts from
what was visible, as an auditor joining there would have seen it.
"""

from __future__ import annotations

from typing import Any

from pyte.graphics import BG_AIXTERM, BG_ANSI, FG_AIXTERM, FG_ANSI

from sshtrail.events import Event, Output, Resize, Start
from sshtrail.fastscreen import FastScreen
from sshtrail.readingscreen import TolerantStream

#: A screen is kept no larger than this, whatever a resize asked (cells cost memory).
MAX_COLS, MAX_ROWS = 1000, 500

_FG = {name: code for code, name in (*FG_ANSI.items(), *FG_AIXTERM.items()) if name != "default"}
_BG = {name: code for code, name in (*BG_ANSI.items(), *BG_AIXTERM.items()) if name != "default"}
PLAIN = "\x1b[0m"
_FLAGS = (("bold", 1), ("italics", 3), ("underscore", 4), ("blink", 5), ("reverse", 7))


def _colour(value: str, names: dict[str, int], extended: int) -> str:
    if value in names:
        return str(names[value])
    if len(value) == 6:  # pyte keeps 256-colour and true colour as rrggbb
        try:
            red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return ""
        return f"{extended};2;{red};{green};{blue}"
    return ""


def _sgr(cell: Any) -> str:
    """The SGR sequence that sets ``cell``'s attributes from none."""
    codes = ["0"]
    codes += [str(code) for name, code in _FLAGS if getattr(cell, name)]
    for code in (_colour(cell.fg, _FG, 38), _colour(cell.bg, _BG, 48)):
        if code:
            codes.append(code)
    return "\x1b[" + ";".join(codes) + "m"


class ScreenState:
    """One session's screen, fed its output in order; :meth:`paint` says it as bytes."""

    def __init__(self, cols: int = 80, rows: int = 24) -> None:
        self.screen = FastScreen(*self._bounded(cols, rows))
        self.stream = TolerantStream(self.screen)

    @staticmethod
    def _bounded(cols: int, rows: int) -> tuple[int, int]:
        return min(max(cols, 1), MAX_COLS), min(max(rows, 1), MAX_ROWS)

    @property
    def size(self) -> tuple[int, int]:
        """(columns, rows) of the screen now."""
        return self.screen.columns, self.screen.lines

    def feed(self, event: Event) -> None:
        """Apply one recorded event: output is drawn, a resize resizes; the rest is not
        the screen's business."""
        if isinstance(event, Output):
            self.stream.feed(event.data)
        elif isinstance(event, Resize | Start) and event.cols and event.rows:
            cols, rows = self._bounded(event.cols, event.rows)
            self.screen.resize(rows, cols)

    def paint(self) -> str:
        """Escape sequences that draw this screen on a blank terminal of its size."""
        screen = self.screen
        out = ["\x1b[0m\x1b[H\x1b[2J"]
        for y in range(screen.lines):
            row = screen.buffer[y]
            last = max((x for x in row if row[x].data != " " or _sgr(row[x]) != PLAIN), default=-1)
            if last < 0:
                continue
            out.append(f"\x1b[{y + 1};1H")
            current = PLAIN
            for x in range(min(last + 1, screen.columns)):
                cell = row[x]
                attrs = _sgr(cell)
                if attrs != current:
                    out.append(attrs)
                    current = attrs
                out.append(cell.data)  # "" after a wide character: it took two cells
            out.append("\x1b[0m")
        cursor = screen.cursor
        out.append(f"\x1b[{cursor.y + 1};{cursor.x + 1}H")
        out.append("\x1b[?25l" if cursor.hidden else "\x1b[?25h")
        return "".join(out)
