"""Telling a password typed blind from keys a screen showed, and from commands hidden.

The gateway masks input the terminal does not echo (docs/recording.md): that is what
keeps passwords out of the recording, and what an operator could abuse by turning echo
off and typing commands blind. Both consumer groups feed a session's events, in order,
to :class:`MaskedInputTracker` and get the same verdict
(:class:`~sshtrail.states.MaskedInput`).

Masked bytes are judged a line at a time, at the Enter that ends it (or at the end of
the session). Only what no screen showed marks the session:

* a **blind line** -- masked keys, and none of the keys typed on it shown -- on the main
  screen is ``masked``: a password at a prompt;
* a line on which some typed key was shown is not blind, though the gateway masked
  other keys of it: a program that draws keys itself (vim draws the ``hello`` of
  ``ihello`` but not the ``i``), or an echo that came late;
* keys typed while a full-screen program owns the terminal (the alternate screen is
  on: vim, less, tmux) are the program's, drawn by it; so are keys still waiting for
  their Enter when a program takes the screen or gives it back.

It is ``suspicious`` when

* a line the operator typed turns echo off (``stty ... -echo``), read as the shell
  reads it, quotes removed (``sshtrail/shellwords.py``: ``stty -ec''ho`` too);
* :data:`MANY_LINES` blind lines were typed, or one of :data:`LONG_LINE` bytes or
  more -- passwords are one short line, commands are not;
* blind input went into a ``read`` whose variable a line hands to a command
  interpreter (``eval``, ``source``, ``.``, ``sh``, ``bash`` ...), after the input or
  on the line of the ``read``: ``read -s c; eval "$c"``. The names read, filled blind
  or about to be, are kept in :attr:`MaskedInputTracker.reads`.

The state is a few numbers, the line being typed and those names, so the store keeps
it in the session's row between batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sshtrail.events import End, Event, Input, MaskedInput, Output, SealedInput
from sshtrail.shellwords import commands
from sshtrail.states import MaskedInput as Verdict

#: A blind line at least this long is not a password.
LONG_LINE: Final = 64
#: Blind lines in a session from which it is no longer a password prompt.
MANY_LINES: Final = 3
#: How much of the line being typed is kept, and of the names read.
LINE_LIMIT: Final = 256
#: Private modes that switch to and from the alternate screen (as sshtrail/terminal.py).
ALTERNATE_MODES: Final = frozenset({b"47", b"1047", b"1049"})
_PRIVATE_MODE: Final = re.compile(rb"\x1b\[\?([0-9;]*)([hl])")
#: Commands that run the text they are handed (as words, a file, or their input).
INTERPRETERS: Final = frozenset(
    {"eval", "source", "sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"}
)
#: Options of ``read`` that take a value (``-a`` names the array read into).
_READ_VALUES: Final = "adinNptu"
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
#: Commands that run the command after them (their options in between are not followed).
_WRAPPERS: Final = frozenset({"sudo", "doas", "env", "command", "builtin", "exec", "nohup", "time"})
_EXPANSION: Final = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
#: In :attr:`MaskedInputTracker.reads`: a name the next line fills (``?``), and that the
#: line reading it also ran (``!``); a bare name was filled blind.
_PENDING, _RUN = "?", "!"


@dataclass(slots=True)
class MaskedInputTracker:
    """The masked-input state of one session; feed it events in order."""

    masked_bytes: int = 0  # bytes of blind lines
    masked_lines: int = 0  # blind lines
    masked_run: int = 0  # bytes masked on the line being typed
    verdict: str | None = None
    input_line: str = ""  # what of the line being typed was shown
    full_screen: bool = False
    reads: str = ""  # names read, space-separated: ``?name``, ``!name``, ``name``

    def feed(self, event: Event) -> None:
        if isinstance(event, MaskedInput | SealedInput):
            self.masked_run += event.count
        elif isinstance(event, Input):
            self._typed(event.data)
        elif isinstance(event, Output):
            self._shown(event.data)
        elif isinstance(event, End) and self.masked_run and not self.input_line:
            self._blind_line()  # typed blind and never entered: still never shown

    def _typed(self, data: bytes) -> None:
        if b"\x1b" in data:  # cursor keys and the like: the line is not followed
            data = bytes(b for b in data if b in b"\r\n")
        for byte in data:
            if byte in (0x0D, 0x0A):
                self._enter()
            elif byte in (0x7F, 0x08):
                self.input_line = self.input_line[:-1]
            elif byte in (0x15, 0x03):  # Ctrl-U, Ctrl-C: the line is gone
                self.input_line = ""
            elif byte >= 0x20:
                self.input_line = (self.input_line + chr(byte))[-LINE_LIMIT:]

    def _shown(self, data: bytes) -> None:
        """Output: follow whether a full-screen program owns the terminal."""
        for full in screen_switches(data):
            if full != self.full_screen:
                self.full_screen = full
                self.masked_run = 0  # keys typed ahead were the program's

    def _enter(self) -> None:
        words = commands(self.input_line) if self.input_line else []
        if any(_turns_echo_off(command) for command in words):
            self.verdict = Verdict.SUSPICIOUS
        blind = self.masked_run > 0 and not self.input_line
        self._follow_reads(words, blind)
        if blind:
            self._blind_line()
        self.masked_run = 0
        self.input_line = ""

    def _blind_line(self) -> None:
        """A line typed blind ended: it marks the session unless a full-screen program
        owned the terminal (then the keys were the program's)."""
        if not self.full_screen:
            self.masked_bytes += self.masked_run
            self.masked_lines += 1
            self.verdict = self.verdict or Verdict.MASKED
            if self.masked_run >= LONG_LINE or self.masked_lines >= MANY_LINES:
                self.verdict = Verdict.SUSPICIOUS
        self.masked_run = 0

    def _follow_reads(self, words: list[list[str]], blind: bool) -> None:
        """At an Enter: a blind line fills the names the line before it read (and is run
        if that line ran them); a shown line reads names, and may run names read."""
        tokens = self.reads.split()
        filled = [token for token in tokens if token[0] not in (_PENDING, _RUN)]
        pending = [token for token in tokens if token[0] in (_PENDING, _RUN)]
        if blind:
            if any(token[0] == _RUN for token in pending):
                self.verdict = Verdict.SUSPICIOUS
            filled += [token[1:] for token in pending]
            pending = []
        elif words:
            read = dict.fromkeys(name for command in words for name in _read_names(command))
            run = _names_run(words)
            if run & set(filled):
                self.verdict = Verdict.SUSPICIOUS
            pending = [(_RUN if name in run else _PENDING) + name for name in read]
        else:
            pending = []
        kept = " ".join(dict.fromkeys([*filled, *pending]))
        self.reads = kept[-LINE_LIMIT:].partition(" ")[2] if len(kept) > LINE_LIMIT else kept


def screen_switches(data: bytes) -> list[bool]:
    """The switches to (True) and from (False) the alternate screen in output ``data``,
    in order."""
    if b"\x1b[?" not in data:
        return []
    return [
        switch.group(2) == b"h"
        for switch in _PRIVATE_MODE.finditer(data)
        if ALTERNATE_MODES.intersection(switch.group(1).split(b";"))
    ]


def _turns_echo_off(words: list[str]) -> bool:
    """``stty ... -echo`` (quotes already removed)."""
    at = _program(words, "stty")
    return at is not None and "-echo" in words[at + 1 :]


def _read_names(words: list[str]) -> list[str]:
    """The variables a simple command's ``read`` fills (``REPLY`` when it names none)."""
    at = _program(words, "read")
    if at is None:
        return []
    names: list[str] = []
    rest = iter(words[at + 1 :])
    for word in rest:
        if word == "--":
            names += rest
        elif word.startswith("-") and len(word) > 1:
            for k, letter in enumerate(word[1:], start=2):
                if letter in _READ_VALUES:
                    value = word[k:] or next(rest, "")
                    if letter == "a":
                        names.append(value)
                    break
        else:
            names.append(word)
    return [name for name in names if _NAME.fullmatch(name)] or ["REPLY"]


def _program(words: list[str], name: str) -> int | None:
    """Where a simple command runs the program ``name``: its first word after variable
    assignments, or a word after a command that runs the rest (``sudo``, ``env`` ...)."""
    started = False
    for at, word in enumerate(words):
        program = word.rsplit("/", 1)[-1]
        if program == name and (not started or words[at - 1].rsplit("/", 1)[-1] in _WRAPPERS):
            return at
        started = started or not _ASSIGNMENT.match(word)
    return None


def _names_run(words: list[list[str]]) -> set[str]:
    """The variables a line expands when it also runs an interpreter (``eval "$c"``,
    ``echo "$c" | sh``, ``. /dev/stdin <<< "$c"``); none when it runs none."""
    runs = any(
        word.rsplit("/", 1)[-1] in INTERPRETERS or (at == 0 and word == ".")
        for command in words
        for at, word in enumerate(command)
    )
    if not runs:
        return set()
    return {name for command in words for word in command for name in _EXPANSION.findall(word)}
