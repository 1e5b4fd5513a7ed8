"""What a person saw in a session: output lines and the commands run, via a terminal emulator.

A pyte screen is fed the session's output exactly as the operator's terminal
was, so escape sequences, carriage returns, backspaces, line editing, tab
completion and history recall are resolved the way they were on screen:

* an **output line** is taken when the cursor leaves it by a line feed, with
  the rows it soft-wrapped over joined back into one line; a line longer than
  :data:`MAX_LINE` is indexed whole, in pieces that overlap by
  :data:`OVERLAP` characters, and text a carriage return let the program
  write over (``secret\\rcovered``) is indexed too;
* a **command** is taken at the line feed that follows an Enter the operator
  typed: the line as the shell finally drew it, minus the prompt that was on
  screen when the operator started typing it. That line is indexed once, as
  the command, not again as output. When that prompt is not at the start of
  the line (the shell redrew it, or keys were typed ahead while output was
  still coming), a prompt seen before is tried; failing that the line is
  taken whole and the command is marked **uncertain**;
* a **screen** is what a full-screen program showed: on the alternate screen
  (``ESC[?1049h``, 1047, 47: vim, less, top, tmux ...) nothing is read line by
  line and no key is a command; instead each screen state that stayed
  visible -- until the program switched back, cleared the screen, or for
  :data:`QUIET_NS` without output -- is indexed, one document per row that the
  previous state did not show, so a line shown once is found once. Rows that
  scroll off the top in between count as shown. The main screen is read the
  same way when cleared or quiet (less the lines already indexed from it, and
  the line the cursor is on): what a program drew there in place (``top``
  without an alternate screen) is found too.

In a PTY session nothing the operator typed is read directly -- only what the
terminal showed -- so input the recorder masked (no echo) can never become
a command. A session without a PTY (``printf 'cmd\\n' | ssh -T ...``) has no
echo to read: its input lines are the commands.

Costs are bounded and linear (``sshtrail/plaintext.py``): the screen is at
most :data:`MAX_COLUMNS` x :data:`MAX_ROWS` whatever the recording claims,
bulk text mostly bypasses the emulator, and no line or input is held beyond
:data:`MAX_LINE` characters; the screen itself draws and scrolls in bulk
(``sshtrail/fastscreen.py``).

Why one module of about 600 lines: the reading rules above -- lines,
commands, screens, input without a PTY -- are one state machine over one
screen (the line being typed and its prompt, the rows carriage returns
overwrote, what each screen showed when last read), driven by the screen's
callbacks in the order the output came. Apart, each rule would need the
others' state. What is not that state machine lives apart: the screen and
its tolerant parser, which only report what happened
(``sshtrail/readingscreen.py``), and the aliases and ``bind -x`` keys a
session defined (``sshtrail/shellmemory.py``).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, Literal

from pyte import modes

from sshtrail.plaintext import prepared, skip_of_run, split_lines
from sshtrail.promptrun import PromptRun
from sshtrail.readingscreen import ReadingScreen, TolerantStream
from sshtrail.shellmemory import ShellMemory
from sshtrail.shellwords import unfinished

Kind = Literal["output", "command", "meta", "input", "screen"]

#: Screen width for sessions without a PTY: their lines are not wrapped by anyone.
NO_PTY_COLUMNS = 1000
#: The largest screen emulated, whatever size a recording claims (the gateway grants
#: no more by default: ``gateway.terminal_max_columns`` / ``_rows``).
MAX_COLUMNS = 1000
MAX_ROWS = 500
#: A line is indexed in pieces of at most this many characters ...
MAX_LINE = 4096
#: ... each repeating the last characters of the one before, so that what spans
#: two pieces is still found (up to this length).
OVERLAP = 64
#: Versions of one line that carriage returns overwrote, kept at most.
MAX_OVERWRITTEN = 4
#: A full-screen program's screen that stayed this long without output was seen.
QUIET_NS = 500_000_000
#: A prompt this long at least, seen on the alternate screen, tells a shell runs there.
MIN_PROMPT = 3
#: Rows that left an alternate screen between two readings, kept at most.
MAX_SCROLLED = 2 * MAX_ROWS


@dataclass(frozen=True, slots=True)
class Found:
    """A line or command, with the session time (ns) at which it was complete."""

    kind: Kind
    text: str
    t: int
    #: False for a command whose prompt could not be told apart (see the module text).
    certain: bool = True


class Terminal:
    """One session's screen. Feed it events in order; collect :attr:`found`.

    ``input_kind`` says what the input lines of a session without a PTY are:
    ``command`` for a shell, ``input`` for data given to a command, None to
    leave them out.
    """

    def __init__(
        self, columns: int, rows: int, pty: bool, input_kind: Kind | None = "command"
    ) -> None:
        columns = min(columns, MAX_COLUMNS) if pty and columns > 0 else NO_PTY_COLUMNS
        rows = min(rows, MAX_ROWS) if pty and rows > 0 else 24
        self._screen = ReadingScreen(columns, rows, self)
        if not pty:
            self._screen.set_mode(modes.LNM)  # bare "\n" output starts a new line
        self._stream = TolerantStream(self._screen)
        self._pty = pty
        self._input_kind = input_kind
        self._line = _Line(self)  # rows of the current line that soft-wrapped so far
        self._skipped: tuple[int, str] | None = None  # text drawn past, and its column
        self._overwritten: list[dict[int, Any]] = []  # rows as carriage returns left them
        self._prompt: str | None = None  # the line's text before the first key
        self._enter = False  # an Enter was typed; its line feed ends a command
        self._enter_t = 0  # when: a command's offset is when it was entered
        self._typed = bytearray()  # a session without a PTY: the input line so far
        self._t = 0
        self._pending: list[bytes] = []
        self._pending_t = 0
        self._changed_t: int | None = None  # the last output not yet read as a screen
        self.drawn = False  # text was drawn since the screen was last read
        self._shown: set[str] = set()  # rows of the alternate screen's last reading
        self._scrolled: list[str] = []  # rows that scrolled off it since
        self._taken: dict[str, None] = {}  # rows of the main screen indexed as lines
        self._prompts: deque[str] = deque(maxlen=4)  # prompts commands were read after
        #: A shell prompt was seen on the alternate screen: its lines are read as the
        #: main screen's (``tput smcup`` and a shell goes on there).
        self._alt_shell = False
        #: The line as it showed at an Enter (:meth:`_entered`), and when: an ``input``
        #: document unless the command read at the line feed is the same.
        self._entered_line: tuple[str, int] | None = None
        #: A command left unfinished (a trailing backslash, an open quote): the shell
        #: reads the next line as its rest; and the prompt it was typed at.
        self._continued = ""
        self._continued_prompt: str | None = None
        #: The command just read expands the history: its next output line is what ran.
        self._expanding = False
        #: The aliases and ``bind -x`` keys the session defined.
        self._shell = ShellMemory()
        #: The last Enter was Ctrl-O (bash, zsh: run the line, then show the next one of
        #: the history at the prompt, ready to run or edit).
        self._fetched = False
        #: Commands read in a row on lines with no prompt (``uncertain-prompt``).
        self.prompt_run = PromptRun()
        self.found: list[Found] = []

    # -- what the session did ------------------------------------------------------

    def output(self, data: bytes, t: int) -> None:
        """Bytes the session showed. Runs of them are fed to the screen at once
        (:meth:`flush`): pyte's cost is per call, and echoes come a byte at a time."""
        self._settle(t)
        self._pending.append(data)
        self._pending_t = self._changed_t = t

    def flush(self) -> None:
        """Feed the output held back so far; what it completes lands in :attr:`found`."""
        if self._pending:
            self._t = self._pending_t
            data = prepared(b"".join(self._pending))
            self._pending.clear()
            self._feed(data)

    def input(self, data: bytes, t: int, blind: bool = False) -> None:
        """Keys the operator typed: where a command starts and ends (PTY), or the
        commands themselves (no PTY). ``blind``: an Enter ending a line whose keys were
        all masked (``read -s c`` then a line typed blind): what the line feed after it
        ends is the output of whatever ran, not a command line the operator saw."""
        if not self._pty:
            self._input_lines(data, t)
            return
        self._settle(t)
        enter = b"\r" in data or b"\n" in data or _OPERATE in data
        if blind and enter:
            self.flush()  # (the line feed of the line before sets no prompt yet)
            if self._prompt is None and not self._enter:
                return
        if self._prompt is None or self._enter or enter:
            self.flush()  # the screen must be current to read the prompt or the line
        self._t = t
        if self._screen.main is not None and not self._shell_on_alternate():
            # Keys for a full-screen program: no shell reads them as a command, but the
            # one its command line hands to a shell (vim's ``:!cmd``) at this Enter.
            if enter and (command := self._program_command()):
                self.found.append(Found("command", command[:MAX_LINE], t, False))
            return
        if self._shell.bound:
            self._bound_keys(data, t)
        if self._prompt is None:
            y, x = self._screen.cursor.y, self._screen.cursor.x
            shown = self._line.text + self._screen.row(y)
            self._prompt = shown[: len(self._line.text) + x]
            if self._fetched and self._prompts and shown.startswith(self._prompts[-1].rstrip()):
                # After Ctrl-O the shell drew its prompt with the next line of its history
                # already on it: that line is the command's, not the prompt's.
                self._prompt = self._prompts[-1]
            self._fetched = False
        if enter:
            self._fetched = _OPERATE in data
            self._entered(t)
        if not self._enter and enter:
            self._enter, self._enter_t = True, t

    def continuing(self) -> bool:
        """Whether the line being typed goes on from an unfinished one (a quote or
        ``$(`` left open, a trailing backslash): the shell did not draw the prompt the
        unfinished line was typed at again (``PS2``, not ``PS1``)."""
        return bool(self._continued) and self._continuing(self._prompt)

    def _continuing(self, prompt: str | None) -> bool:
        started = self._continued_prompt
        return not (prompt and started and prompt.strip() == started.strip())

    def _end_continued(self) -> None:
        """An unfinished line the shell did not read on from (or the session ended):
        it is a command of its own, read with doubt."""
        if self._continued:
            held = self._continued.removesuffix("\n")
            self.found.append(Found("command", held[:MAX_LINE], self._enter_t, False))
        self._continued, self._continued_prompt = "", None

    def _shell_on_alternate(self) -> bool:
        """Whether the program on the alternate screen is a shell: the row the cursor is
        on starts with a prompt a command was read after (once seen, until the screen
        is switched)."""
        if not self._alt_shell:
            row = self._screen.row(self._screen.cursor.y)
            self._alt_shell = any(
                len(known.strip()) >= MIN_PROMPT and row.startswith(known.rstrip())
                for known in self._prompts
            )
        return self._alt_shell

    def _entered(self, t: int) -> None:
        """An Enter: the line the cursor is on, as it shows now (typed and echoed), is
        kept; if no command is read from it at its line feed -- a prompt or trap that
        moves the cursor or deletes the line first -- it is indexed as ``input``."""
        self._flush_entered()
        line = (self._line.text + self._screen.row(self._screen.cursor.y)).rstrip()
        typed, _certain = self._command_of(line, self._prompt, remember=False)
        if typed:
            self._entered_line = (typed[:MAX_LINE], t)

    def _flush_entered(self, command: str | None = None) -> None:
        """The line kept at the last Enter, indexed as ``input`` unless ``command`` (read
        at its line feed) says the same."""
        if self._entered_line is None:
            return
        typed, t = self._entered_line
        self._entered_line = None
        if not command:  # (a paste's Enter may come before
            # its echo: then less showed than the command the shell read)
            self.found.append(Found("input", typed, t))

    def line_at_cursor(self) -> tuple[str, bool] | None:
        """The command an Enter typed now would run, as the screen shows it: the line the
        cursor is on (its soft-wrapped rows joined) minus its prompt, and whether the
        prompt was told apart; None while a full-screen program owns the screen (keys
        there are the program's). The gateway's command policy reads this
        (``producer/linegate.py``); nothing here changes."""
        self.flush()
        if self._screen.main is not None and not self._shell_on_alternate():
            command = self._program_command()
            return (command, True) if command else None
        line = (self._line.text + self._screen.row(self._screen.cursor.y)).rstrip()
        return self._command_of(line, self._prompt, remember=False)

    def expand_aliases(self, line: str) -> str | None:
        """``line`` as the session's aliases make it; None when none applies
        (:meth:`ShellMemory.expand_aliases`)."""
        return self._shell.expand_aliases(line)

    def _bound_keys(self, data: bytes, t: int) -> None:
        """A key bound with ``bind -x`` was typed: its command runs (and, when it reads
        ``READLINE_LINE``, so may the line on screen), uncertain -- no Enter ends it."""
        for keys, command in self._shell.bound.items():
            if keys not in data:
                continue
            self.flush()
            self.found.append(Found("command", command[:MAX_LINE], t, False))
            if "READLINE_LINE" in command:
                row = (self._line.text + self._screen.row(self._screen.cursor.y)).rstrip()
                line, _certain = self._command_of(row, self._prompt, remember=False)
                if line:
                    self.found.append(Found("command", line[:MAX_LINE], t, False))

    def _program_command(self) -> str | None:
        """The shell command a full-screen program's command line shows, ready to run:
        vim's ``:!cmd`` (``:r !cmd``, ``:w !cmd``, ``:%!filter``) on the screen's last
        row, the cursor on it; None otherwise (``:!!`` repeats one the screen does not
        show)."""
        y = self._screen.cursor.y
        if y != self._screen.lines - 1:
            return None
        found = _SHELL_ESCAPE.match(self._screen.row(y).rstrip())
        return found.group(1).strip() or None if found else None

    def before_cursor(self) -> str:
        """The character left of the cursor on screen ("" at the start of a row): the
        policy gate waits for it to be the last key typed (its echo has come)."""
        self.flush()
        x = self._screen.cursor.x
        return self._screen.row(self._screen.cursor.y)[x - 1 : x] if x > 0 else ""

    def resize(self, columns: int, rows: int) -> None:
        self._settle(self._pending_t)
        self.flush()
        if self._pty and columns > 0 and rows > 0:
            self._screen.resize(min(rows, MAX_ROWS), min(columns, MAX_COLUMNS))

    def finish(self, t: int) -> None:
        """The session ended: the line the cursor is on counts as seen."""
        self.flush()
        self._t = t
        self._flush_entered()
        self._end_continued()
        if self._screen.main is None:
            self._enter = False
            self._take(self._screen.cursor.y)
        if self.drawn:
            self._read_screen()  # text drawn in place, that no line feed took
        if self._typed:
            self._typed_line(bytes(self._typed), t)
            self._typed.clear()

    # -- feeding the emulator cheaply ------------------------------------------------

    def _feed(self, data: bytes) -> None:
        screen = self._screen
        if self._pty:
            lines = split_lines(data, screen.lines)
            if lines is not None:
                self._stream.feed(lines.head)
                for line in lines.lines:
                    self._line.add(line)
                    self._line.end(self._t)
                self._feed(lines.tail)
                return
        skip = skip_of_run(data, screen.columns, screen.lines)
        if skip is not None:
            self._stream.feed(skip.before)
            self._skipped = (screen.cursor.x, skip.skipped)
            self._feed(skip.after)
            return
        self._stream.feed(data)

    # -- screens -------------------------------------------------------------------------

    def _settle(self, t: int) -> None:
        """Something happens at ``t``: a full-screen program's screen that had no output
        for :data:`QUIET_NS` before it was seen, and is read."""
        if self._changed_t is not None and t - self._changed_t >= QUIET_NS:
            self.flush()
            self._changed_t = None
            if self.drawn and self._pty:
                # On the main screen, less the line being typed or written: it is read
                # as a line when it ends.
                self._read_screen(but=None if self._screen.main else self._screen.cursor.y)

    def entering_alternate(self) -> None:
        self._fresh_screen()

    def leaving_alternate(self) -> None:
        self.clearing()  # what the program showed last was seen
        self._fresh_screen()

    def _fresh_screen(self) -> None:
        """Another screen is shown: no line being typed, nothing read from it yet."""
        self._prompt, self._enter, self._overwritten = None, False, []
        self._alt_shell = False
        self._shown, self._scrolled = set(), []
        self.drawn = False

    def clearing(self) -> None:
        """The whole screen is about to be erased: what it shows now was seen."""
        if self.drawn:
            self._read_screen()

    def scrolled_off(self, row: str) -> None:
        """A row left the alternate screen (scrolled off, or erased to be replaced)."""
        if row and len(self._scrolled) < MAX_SCROLLED:
            self._scrolled.append(row)

    def row_removed(self, row: str) -> None:
        """A row was deleted from the screen (``CSI M``, ``CSI L``): on the alternate
        screen it left as a scrolled row does; on the main one it is indexed as a
        screen row unless it was indexed already."""
        if self._screen.main is not None and not self._alt_shell:
            self.scrolled_off(row)
            return
        text = row.strip()
        if text and text not in self._taken:
            self.found.append(Found("screen", text[:MAX_LINE], self._t))
            self._took(text)

    def _read_screen(self, but: int | None = None) -> None:
        """Index the rows of the screen (and those scrolled off it) that were not
        indexed already: on the alternate screen, those its last reading did not show;
        on the main one, those not read off it as lines. Row ``but`` is left out."""
        screen = self._screen
        alternate = screen.main is not None
        rows = [*self._scrolled, *(screen.row(y) for y in range(screen.lines) if y != but)]
        self._scrolled, self.drawn = [], False
        seen: set[str] | dict[str, None] = self._shown if alternate else self._taken
        now: set[str] = set()
        for row in rows:
            text = row.strip()
            if text and text not in now and text not in seen:
                self.found.append(Found("screen", text[:MAX_LINE], self._t))
            now.add(text)
        if alternate:
            self._shown = now
        else:
            for text in now:
                self._took(text)

    def _took(self, row: str) -> None:
        """A row of the main screen was indexed (kept for the last two screens' worth)."""
        taken = self._taken
        taken[row.strip()] = None
        if len(taken) > 2 * self._screen.lines:
            del taken[next(iter(taken))]

    # -- what the screen reports -----------------------------------------------------

    def linefeed(self, y: int, soft: bool) -> None:
        if self._screen.main is not None and not self._alt_shell:
            return  # a full-screen program's rows are read as screens
        if soft:
            row = self._screen.row(y)
            if self._skipped is not None:  # the text drawn past belongs in this row
                x, text = self._skipped
                row, self._skipped = row[:x] + text + row[x:], None
            self._line.add(row)
            return
        self._take(y)

    def carriage_return(self, y: int) -> None:
        """A carriage return on a row that has text: what later output writes over it
        would be lost to the screen, so the row as it is now is kept as a candidate
        (its cells, copied; read as text only if the line ends up different)."""
        if self._screen.main is not None and not self._alt_shell:
            return
        if self._prompt is None and len(self._overwritten) < MAX_OVERWRITTEN:
            row = self._screen.buffer.get(y)
            if row and (not self._overwritten or self._overwritten[-1] != row):
                self._overwritten.append(dict(row))

    def _take(self, y: int) -> None:
        final: dict[int, Any] = self._screen.buffer.get(y) or {}
        overwritten = [
            text
            for cells in self._overwritten
            if cells != final and (text := self._screen.text_of(cells).rstrip())
        ]
        self._overwritten = []
        self._line.add(self._screen.row(y))
        line = self._line.text.rstrip()
        self._line.reset()
        if not self._enter and self._shows_prompt(line):
            self.prompt_run.prompt_drawn()
        if self._enter:
            # Without an Enter the prompt stays: a shell that lists completions redraws
            # the same prompt and the line typed so far below them.
            prompt, self._prompt, self._enter = self._prompt, None, False
            command, certain = self._command_of(line, prompt)
            self._flush_entered(command)
            if self._continued and not self._continuing(prompt):
                self._end_continued()  # the shell's own prompt again: it did not read on
            if command and unfinished(self._continued + command):  # its rest comes next
                if not self._continued:
                    self._continued_prompt = prompt
                self._continued = _kept_for_next(self._continued + command)
                return
            if command or self._continued:  # the command line is one document
                command, self._continued = self._continued + command, ""
                found = Found("command", command[:MAX_LINE], self._enter_t, certain)
                self.found.append(found)
                self.prompt_run.command(certain, not certain and not self._shows_prompt(line))
                expanded = self._shell.expand_aliases(command)
                if expanded is not None:  # what ran, as far as the session's aliases tell
                    self.found.append(Found("command", expanded[:MAX_LINE], self._enter_t, False))
                self._shell.learn_bindings(command)
                self._shell.learn_aliases(command)  # in force from the next line, as in bash
                # (not inside single quotes, where bash expands nothing)
                self._expanding = _HISTORY.search(re.sub(r"'[^']*'", "", command)) is not None
                return
        if self._expanding:
            # The line bash prints for a history expansion (``!!``, ``!-2``, ``^a^b``) or
            # ``fc -s``, before running it: what ran, beside what was typed.
            self._expanding = False
            if line.strip() and not _HISTORY_FAILED.search(line):
                self.found.append(Found("command", line.strip()[:MAX_LINE], self._t, False))
                return
        for earlier in dict.fromkeys(overwritten):
            if earlier not in line:
                self.found.append(Found("output", earlier[:MAX_LINE], self._t))
        self._line.emit(line, self._t)

    def _command_of(self, line: str, prompt: str | None, remember: bool = True) -> tuple[str, bool]:
        """The command on an entered ``line``, and whether its prompt was told apart:
        the prompt on screen when typing began (its trailing blanks may be cut),
        else a prompt seen before, at the start of the line (the shell redrew it) or
        after keys typed ahead; else the line, minus what looks like a prompt.
        ``remember``: the prompt told apart is one to try on later lines."""
        if prompt and prompt.strip() and line[: len(prompt)].rstrip() == prompt.rstrip():
            if remember:
                if prompt in self._prompts:
                    self._prompts.remove(prompt)
                self._prompts.append(prompt)
            return line[len(prompt) :].strip(), True
        for known in reversed(self._prompts):
            if line.startswith(known.rstrip()):
                return line[len(known) :].strip(), True
            at = line.rfind(known.rstrip())
            if at > 0:
                return line[at + len(known) :].strip(), False
        looks = _PROMPT_LIKE.match(line)
        if looks and remember and looks.group() not in self._prompts:
            self._prompts.append(looks.group())  # typed ahead of it: still a prompt seen
        return (line[looks.end() :] if looks else line).strip(), False

    def _shows_prompt(self, line: str) -> bool:
        """Whether ``line`` holds a prompt seen before, or begins with one like it."""
        known = any(prompt.strip() and prompt.rstrip() in line for prompt in self._prompts)
        return known or _PROMPT_LIKE.match(line) is not None

    # -- input without a PTY -----------------------------------------------------------

    def _input_lines(self, data: bytes, t: int) -> None:
        if self._input_kind is None:
            return
        self._typed += data
        while (end := self._typed.find(b"\n")) >= 0:
            line, self._typed = bytes(self._typed[:end]), self._typed[end + 1 :]
            self._typed_line(line, t)
        if len(self._typed) > MAX_LINE:
            self._typed_line(bytes(self._typed[: MAX_LINE - OVERLAP]), t)
            del self._typed[: MAX_LINE - 2 * OVERLAP]

    def _typed_line(self, line: bytes, t: int) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r").strip()
        if not text or self._input_kind is None:
            return
        if any(ord(c) < 0x20 and c != "\t" for c in text):
            return  # binary data given to a command, not a line of text
        self.found.append(Found(self._input_kind, text[:MAX_LINE], t))


def _kept_for_next(command: str) -> str:
    """What the shell keeps of an unfinished ``command`` for the next line: less its
    trailing backslash (backslash-newline joins the lines), or with the newline that
    is part of the quote left open."""
    if command.endswith("\\") and not unfinished(command[:-1]):
        return command[:-1]
    return command + "\n"


#: vim's command line handing a command to a shell: ``:!cmd``, with a range or a
#: read or write before the bang (``:%!sort``, ``:r !date``, ``:w !sudo tee %``).
_SHELL_ESCAPE: Final = re.compile(r"^:[%.,$'<>0-9a-z ]*!(?!!)(.+)$")

#: A command line bash expands from its history before running it, printing what it
#: runs: an event designator (``!!``, ``!-2``, ``!12``, ``!ec``, ``!?x?``), a quick
#: substitution (``^old^new``), or ``fc -s`` / ``r``. Not ``!`` followed by a blank,
#: ``=`` or ``(`` (no expansion there).
_HISTORY: Final = re.compile(r"(?:^|[\s;&|(])!(?:[!?#$^*-]|\d|\w)|^\^[^^\s]+\^|^(?:fc\s+-s|r)\b")
#: What bash says when an expansion fails: nothing ran.
_HISTORY_FAILED: Final = re.compile(
    r": event not found$|: substitution failed$|: no command found$"
)

#: Ctrl-O: bash's operate-and-get-next (zsh: accept-line-and-down-history), an Enter.
_OPERATE: Final = b"\x0f"

#: What reads as a shell prompt at the start of a line: ``user@host:~/dir$ ``,
#: ``[user@host dir]# ``, ``host% ``.
_PROMPT_LIKE = re.compile(r"^\s*(?:\[[^\]\n]{1,80}\]|[\w.-]+@[\w.-]+(?::\S*)?|[\w.~/-]+)[$#%>] ")


class _Line:
    """The text of the line the cursor is on, across soft wraps; pieces of it are
    indexed as it grows past :data:`MAX_LINE`, so it is never held whole."""

    def __init__(self, terminal: Terminal) -> None:
        self._terminal = terminal
        self.text = ""

    def add(self, row: str) -> None:
        self._terminal._took(row)
        self.text += row
        while len(self.text) > MAX_LINE + OVERLAP:
            piece = self.text[:MAX_LINE]
            self._terminal.found.append(Found("output", piece, self._terminal._t))
            self.text = self.text[MAX_LINE - OVERLAP :]

    def end(self, t: int) -> None:
        """A complete line taken without the screen (``plaintext.split_lines``)."""
        line, self.text = self.text, ""
        self.emit(line, t)

    def emit(self, line: str, t: int) -> None:
        if line.strip():
            self._terminal.found.append(Found("output", line[:MAX_LINE], t))

    def reset(self) -> None:
        self.text = ""
