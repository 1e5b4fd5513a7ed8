"""Telling a password prompt from an operator who turned echo off to hide what they type.

The gateway masks input the terminal does not echo (docs/recording.md):
that is what keeps passwords out of the recording, and what an operator
could abuse by running ``stty -echo`` and typing commands blind. Both
consumer groups feed a session's events, in order, to
:class:`MaskedInputTracker` and get the same verdict
(:class:`~sshtrail.states.MaskedInput`):

* ``masked`` once any input was masked;
* ``suspicious`` when the operator's own typed line turned echo off
  (``stty ... -echo``), when three or more lines were typed blind, or when
  one blind line was long (:data:`LONG_LINE` bytes or more) -- passwords are
  one short line, commands are not.

The state is a few numbers and the line being typed, so the store keeps it
in the session's row between batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sshtrail.events import Event, Input, MaskedInput, SealedInput
from sshtrail.states import MaskedInput as Verdict

#: A blind line at least this long is not a password.
LONG_LINE: Final = 64
#: Blind lines in a session from which it is no longer a password prompt.
MANY_LINES: Final = 3
#: How much of the line being typed is kept.
LINE_LIMIT: Final = 256
_ECHO_OFF: Final = re.compile(r"\bstty\b[^;&|]*\s-echo\b")


@dataclass(slots=True)
class MaskedInputTracker:
    """The masked-input state of one session; feed it events in order."""

    masked_bytes: int = 0
    masked_lines: int = 0
    masked_run: int = 0
    verdict: str | None = None
    input_line: str = ""

    def feed(self, event: Event) -> None:
        if isinstance(event, MaskedInput | SealedInput):
            self.masked_bytes += event.count
            self.masked_run += event.count
            self.verdict = self.verdict or Verdict.MASKED
        elif isinstance(event, Input):
            self._typed(event.data)

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

    def _enter(self) -> None:
        if _ECHO_OFF.search(self.input_line):
            self.verdict = Verdict.SUSPICIOUS
        if self.masked_run:
            self.masked_lines += 1
            if self.masked_run >= LONG_LINE or self.masked_lines >= MANY_LINES:
                self.verdict = Verdict.SUSPICIOUS
        self.masked_run = 0
        self.input_line = ""
