"""What a person saw in a session: output lines and the commands run, via a terminal emulator.

A pyte screen is fed the session's output exactly as the operator's terminal
was, so escape sequences, carriage returns, backspaces, line editing, tab
completion and history recall are resolved the way they were on screen:

* an **output line** is taken when the cursor leaves it by a line feed, with
  the rows it soft-wrapped over joined back into one line;
* a **command** is taken at the line feed that follows an Enter the operator
  typed: the line as the shell finally drew it, minus the prompt that was on
  screen when the operator started typing it. That line is indexed once, as
  the command, not again as output.

Nothing the operator typed is read directly -- only what the terminal showed --
so input the recorder masked (no echo) can never become a command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pyte
from pyte import modes

Kind = Literal["output", "command", "meta"]

#: Screen width for sessions without a PTY: their lines are not wrapped by anyone.
NO_PTY_COLUMNS = 4096
#: A line longer than this is cut when indexed (a runaway line is not a document).
MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class Found:
    """A line or command, with the session time (ns) at which it was complete."""

    kind: Kind
    text: str
    t: int


class _Screen(pyte.Screen):
    """A pyte screen that reports each line feed, telling soft wraps from real ones."""

    def __init__(self, columns: int, lines: int, on_linefeed: Any) -> None:
        super().__init__(columns, lines)
        self._on_linefeed = on_linefeed
        self._drawing = False

    def draw(self, data: str) -> None:
        self._drawing = True  # a line feed from inside draw() is an automatic wrap
        try:
            super().draw(data)
        finally:
            self._drawing = False

    def linefeed(self) -> None:
        self._on_linefeed(self.cursor.y, self._drawing)
        super().linefeed()

    def row(self, y: int) -> str:
        """The text of row ``y`` as displayed (wide characters once)."""
        line = self.buffer[y]
        if not line:
            return ""
        # Cells never written are blanks; only the written span is walked.
        return "".join(line[x].data for x in range(min(max(line) + 1, self.columns)))


class Terminal:
    """One session's screen. Feed it events in order; collect :attr:`found`."""

    def __init__(self, columns: int, rows: int, pty: bool) -> None:
        columns = columns if pty and columns > 0 else NO_PTY_COLUMNS
        rows = rows if pty and rows > 0 else 24
        self._screen = _Screen(columns, rows, self._linefeed)
        if not pty:
            self._screen.set_mode(modes.LNM)  # bare "\n" output starts a new line
        self._stream = pyte.ByteStream(self._screen)
        self._pty = pty
        self._wrapped = ""  # rows of the current line that soft-wrapped so far
        self._prompt: str | None = None  # the line's text before the first key
        self._enter = False  # an Enter was typed; its line feed ends a command
        self._enter_t = 0  # when: a command's offset is when it was entered
        self._t = 0
        self._pending: list[bytes] = []
        self._pending_t = 0
        self.found: list[Found] = []

    def output(self, data: bytes, t: int) -> None:
        """Bytes the session showed. Runs of them are fed to the screen at once
        (:meth:`flush`): pyte's cost is per call, and echoes come a byte at a time."""
        self._pending.append(data)
        self._pending_t = t

    def flush(self) -> None:
        """Feed the output held back so far; what it completes lands in :attr:`found`."""
        if self._pending:
            self._t = self._pending_t
            self._stream.feed(b"".join(self._pending))
            self._pending.clear()

    def input(self, data: bytes, t: int) -> None:
        """Keys the operator typed: only marks where a command starts and ends."""
        if not self._pty:
            return
        enter = b"\r" in data or b"\n" in data
        if self._prompt is None or self._enter or enter:
            self.flush()  # the screen must be current to read the prompt or the line
        self._t = t
        if self._prompt is None:
            y, x = self._screen.cursor.y, self._screen.cursor.x
            self._prompt = (self._wrapped + self._screen.row(y))[: len(self._wrapped) + x]
        if not self._enter and enter:
            self._enter, self._enter_t = True, t

    def resize(self, columns: int, rows: int) -> None:
        self.flush()
        if self._pty and columns > 0 and rows > 0:
            self._screen.resize(rows, columns)

    def finish(self, t: int) -> None:
        """The session ended: the line the cursor is on counts as seen."""
        self.flush()
        self._t = t
        self._enter = False
        self._take(self._screen.cursor.y)

    def _linefeed(self, y: int, soft: bool) -> None:
        if soft:
            self._wrapped += self._screen.row(y)
            return
        self._take(y)

    def _take(self, y: int) -> None:
        line = (self._wrapped + self._screen.row(y)).rstrip()
        self._wrapped = ""
        prompt, self._prompt = self._prompt, None
        if self._enter:
            self._enter = False
            # The prompt as it was when typing began; its trailing blanks may be cut.
            on_screen = line[: len(prompt)].rstrip() == prompt.rstrip() if prompt else False
            command = line[len(prompt) :] if on_screen and prompt else line
            if command.strip():  # the command line is one document: the command
                self.found.append(Found("command", command.strip()[:MAX_LINE], self._enter_t))
                return
        if line.strip():
            self.found.append(Found("output", line[:MAX_LINE], self._t))
