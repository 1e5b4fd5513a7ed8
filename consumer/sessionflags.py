"""Why a session deserves an auditor's eye: the flags the store group sets on its row.

The store feeds a session's events, as they arrive, to :class:`FlagTracker` (beside the
masked-input tracker, consumer/sessionrow.py); its state is a few numbers and short
texts, kept in the row's ``flag_state`` between batches. Flags are never taken back.
The rules, and why (docs/recording.md, "Flags"):

* ``prompt-erases`` -- :data:`ERASING_RUN` entered lines in a row each followed, before
  the next key, by output that homes the cursor and then deletes lines (``ESC[<n>M``)
  or erases the display (``ESC[J``, ``ESC[2J``, ``ESC[3J``): a prompt or a trap wiping
  what was typed. An entered line is one with an echoed key. ``clear`` typed once is
  one such line; the next line that is not erased breaks the run. Lines entered while
  a full-screen program owns the alternate screen are not counted (its repaints are
  its own), unless the screen was switched on after a line running ``tput``,
  ``printf`` or ``echo``: then the shell goes on there (``tput smcup``).
* ``binary-stdin`` -- an ``exec`` without a PTY whose command runs an interpreter that
  reads its program from standard input (:func:`reads_program_from_stdin`), and whose
  first :data:`STDIN_SAMPLE` bytes of input are not text: a NUL, or
  :data:`ODD_PERCENT` % of them control bytes or not UTF-8 -- or whose command also
  decodes (:func:`decodes`: ``base64 -d``, ``xxd -r``, ``gunzip`` ...): then the bytes
  sent are text or not, but the program run is not what they read as.
* ``blind-eval`` -- the masked-input mark is ``suspicious`` (sshtrail/maskedinput.py);
  ``transfer-unrequested`` -- set where transfers are read (:func:`transfer_unrequested`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Final

from sshtrail.events import End, Event, Exec, Input, MaskedInput, Output, SealedInput, Start
from sshtrail.maskedinput import screen_switches
from sshtrail.shellwords import commands, program_at
from sshtrail.states import SessionFlag
from sshtrail.transferprotocol import Recognised, by_words

#: Entered lines in a row that must each be erased.
ERASING_RUN: Final = 3
#: Input bytes of a session without a PTY judged for text.
STDIN_SAMPLE: Final = 1024
#: Share of those bytes (control or not UTF-8) from which they are not text.
ODD_PERCENT: Final = 30
#: Programs that switch to the alternate screen and leave the shell drawing there.
SCREEN_SETTERS: Final = frozenset({"tput", "printf", "echo"})
#: Who draws on the screen: the shell (the main screen, or one a SCREEN_SETTER took).
MAIN, PROGRAM, SHELL = "main", "program", "shell"

_HOME: Final = re.compile(rb"\x1b\[(?:1?;?1?)H")
_ERASE: Final = re.compile(rb"\x1b\[[0-9]*M|\x1b\[[023]?J")
#: What of the line being typed is kept: enough for its first word.
_LINE: Final = 32
_TEXT_CONTROLS: Final = frozenset(b"\t\n\v\f\r")

#: Interpreters by name, and the letters of their options that give the program (so
#: standard input is data, not the program).
_INTERPRETERS: Final = (
    (re.compile(r"(?:ba|da|z|k|a)?sh"), "c"),
    (re.compile(r"python[0-9.]*|pypy[0-9.]*"), "cm"),
    (re.compile(r"perl[0-9.]*"), "eE"),
    (re.compile(r"ruby[0-9.]*"), "e"),
    (re.compile(r"node(?:js)?"), "ep"),
)
_GIVEN_LONG: Final = frozenset({"--eval", "--print", "--command"})
#: Programs that always decode what they read (by name), and those that do with one of
#: these options (``base64 -d``, ``xxd -r``, ``openssl enc -d``, ``gzip -d``).
_DECODERS: Final = frozenset(
    {"gunzip", "zcat", "bunzip2", "bzcat", "unxz", "xzcat", "unzstd", "zstdcat", "unlz4",
     "lz4cat", "uudecode", "lzcat", "unlzma"}
)  # fmt: skip
_DECODING_OPTIONS: Final = {
    "base64": {"-d", "--decode", "-D"},
    "base32": {"-d", "--decode"},
    "basenc": {"-d", "--decode"},
    "xxd": {"-r", "-revert"},
    "openssl": {"-d", "-decode"},
    "gzip": {"-d", "--decompress"},
    "bzip2": {"-d", "--decompress"},
    "xz": {"-d", "--decompress"},
    "zstd": {"-d", "--decompress"},
    "lz4": {"-d", "--decompress"},
}
#: Options whose value is the next word.
_VALUED: Final = frozenset({"-o", "+o", "-O", "+O", "-W", "-X", "-I", "-r", "--require"})


@dataclass(slots=True)
class FlagTracker:
    """The flag state of one session; feed it events in order, read :meth:`found`."""

    run: int = 0  # entered lines erased in a row
    waiting: bool = False  # an entered line's output is being watched
    homed: bool = False  # ... and it homed the cursor
    line: str = ""  # the start of the line being typed
    last: str = ""  # the program of the last entered line
    screen: str = MAIN
    erases: bool = False  # ERASING_RUN reached
    pty: bool | None = None
    interpreter: bool = False  # the exec runs an interpreter reading stdin
    looked: int = 0  # input bytes judged (at most STDIN_SAMPLE)
    odd: int = 0  # of them, control bytes or not UTF-8
    pending: int = 0  # UTF-8 continuation bytes expected
    binary: bool = False
    decoded: bool = False  # the exec's command also decodes (base64 -d ...)

    @classmethod
    def from_state(cls, state: str | None) -> FlagTracker:
        """The tracker ``state`` (:meth:`state`) holds; a fresh one for anything else (a
        row stored before flags, or a value no store wrote)."""
        try:
            values = json.loads(state) if state else {}
        except ValueError:
            values = {}
        tracker = cls()
        if not isinstance(values, dict):
            return tracker
        for field in fields(cls):
            value = values.get(field.name)
            if value is not None and type(value) is type(getattr(tracker, field.name)):
                setattr(tracker, field.name, value)
            elif field.name == "pty" and isinstance(value, bool):
                tracker.pty = value
        return tracker

    def state(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def found(self) -> set[str]:
        flags = set()
        if self.erases:
            flags.add(SessionFlag.PROMPT_ERASES.value)
        if (self.binary or self.decoded) and self.interpreter and self.pty is False:
            flags.add(SessionFlag.BINARY_STDIN.value)
        return flags

    def feed(self, event: Event) -> None:
        if isinstance(event, Output):
            self._shown(event.data)
        elif isinstance(event, Input):
            self._typed(event.data)
            self._judge_stdin(event.data)
        elif isinstance(event, MaskedInput | SealedInput):
            self._close_window()
        elif isinstance(event, Start):
            self.pty = event.term != ""
        elif isinstance(event, Exec) and event.mode == "exec":
            command = event.command.decode("utf-8", "replace")
            self.interpreter = reads_program_from_stdin(command)
            self.decoded = decodes(command)
        elif isinstance(event, End):
            self._close_window()
            self._decide_stdin(ended=True)

    def _typed(self, data: bytes) -> None:
        if b"\x1b" in data:  # cursor keys and the like: the line is not followed
            data = bytes(b for b in data if b in b"\r\n")
        for byte in data:
            if byte in (0x0D, 0x0A):
                self._close_window()
                if self.line:
                    self.waiting, self.homed = True, False
                    first = self.line.split()
                    self.last = first[0].rsplit("/", 1)[-1][:_LINE] if first else ""
                self.line = ""
            elif byte in (0x15, 0x03):
                self.line = ""
            elif byte in (0x7F, 0x08):
                self.line = self.line[:-1]
            elif byte >= 0x20:
                self._close_window()
                if len(self.line) < _LINE:
                    self.line += chr(byte)

    def _close_window(self) -> None:
        """A key, or the end: the entered line's output was not erased."""
        if self.waiting:
            self.waiting = False
            if self.screen != PROGRAM:
                self.run = 0

    def _shown(self, data: bytes) -> None:
        for on in screen_switches(data):
            if not on:
                self.screen = MAIN
            elif self.screen == MAIN:
                self.screen = SHELL if self.last in SCREEN_SETTERS else PROGRAM
        if not self.waiting or b"\x1b[" not in data:
            return
        at = 0
        if not self.homed:
            home = _HOME.search(data)
            if home is None:
                return
            self.homed, at = True, home.end()
        if _ERASE.search(data, at) is not None:
            self.waiting = False
            if self.screen != PROGRAM:
                self.run += 1
                self.erases = self.erases or self.run >= ERASING_RUN

    def _judge_stdin(self, data: bytes) -> None:
        if self.looked >= STDIN_SAMPLE:
            return
        sample = data[: STDIN_SAMPLE - self.looked]
        self.looked += len(sample)
        for byte in sample:
            if self.pending and 0x80 <= byte <= 0xBF:
                self.pending -= 1
                continue
            if self.pending:  # a sequence cut short: that much was not UTF-8
                self.pending, self.odd = 0, self.odd + 1
            if byte == 0:
                self.binary = True
            if (byte < 0x20 and byte not in _TEXT_CONTROLS) or byte == 0x7F:
                self.odd += 1
            elif byte >= 0x80:
                announced = _continuations(byte)
                if announced < 0:
                    self.odd += 1
                self.pending = max(announced, 0)
        self._decide_stdin(ended=False)

    def _decide_stdin(self, ended: bool) -> None:
        if (ended or self.looked >= STDIN_SAMPLE) and self.looked:
            self.binary = self.binary or self.odd * 100 >= self.looked * ODD_PERCENT


def _continuations(lead: int) -> int:
    """The continuation bytes a UTF-8 lead byte announces; -1 for no lead byte."""
    if 0xC2 <= lead <= 0xDF:
        return 1
    if 0xE0 <= lead <= 0xEF:
        return 2
    if 0xF0 <= lead <= 0xF4:
        return 3
    return -1


def reads_program_from_stdin(command: str) -> bool:
    """Whether ``command`` runs an interpreter whose program is its standard input: with
    ``-`` or ``-s``, or given no script nor program text, alone or as a stage of a pipe
    (``base64 -d | sh``), however wrapped (``env``, ``sudo``, ``sh -c``)."""
    return any(_stdin_program(words) for words in commands(command))


def decodes(command: str) -> bool:
    """Whether ``command`` runs a decoder anywhere in it (``base64 -d``, ``xxd -r``,
    ``gunzip``, ``openssl enc -d`` ...), however wrapped: what it hands on is not the
    text that was sent."""
    return any(_decoder(words) for words in commands(command))


def _decoder(words: list[str]) -> bool:
    for at, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        if program_at(words, name) != at:
            continue
        if name in _DECODERS:
            return True
        options = _DECODING_OPTIONS.get(name)
        if options is not None:
            return any(
                argument in options
                or (argument[:1] == "-" and argument[1:2] != "-" and "d" in argument[1:]
                    and name not in ("xxd", "openssl"))
                for argument in words[at + 1 :]
            )  # fmt: skip
    return False


def _stdin_program(words: list[str]) -> bool:
    for at, word in enumerate(words):
        name = word.rsplit("/", 1)[-1]
        for pattern, given in _INTERPRETERS:
            if pattern.fullmatch(name) and program_at(words, name) == at:
                return _reads_stdin(words[at + 1 :], given)
    return False


def _reads_stdin(arguments: list[str], given: str) -> bool:
    """Whether an interpreter called with ``arguments`` reads its program from stdin;
    ``given``: the letters of its options that give the program instead."""
    rest = iter(arguments)
    for word in rest:
        if word == "-":
            return True
        if word == "--":
            return next(rest, None) is None
        if word in _GIVEN_LONG:
            return False
        if word[:1] in "-+" and len(word) > 1:
            letters = word.lstrip("-+")
            if any(letter in given for letter in letters):
                return False
            if given == "c" and "s" in letters:  # a shell's -s: commands from stdin
                return True
            if word in _VALUED:
                next(rest, None)
            continue
        return False  # a script file
    return True


def transfer_unrequested(
    found: Recognised | None, request: str | None, command: str | None
) -> bool:
    """Whether the transfer ``found`` in a session's bytes is one its request did not
    name: no ``sftp`` subsystem, ``sftp-server`` or ``scp -t``/``-f`` (or another one)."""
    if found is None:
        return False
    named = by_words(request, command)
    return named is None or named.protocol != found.protocol
