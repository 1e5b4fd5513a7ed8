"""Which typed bytes enter the recording: input the terminal never echoes is masked.

The rule (docs/recording.md): in a session with a PTY, printable input is
recorded only once the target echoes it back, that is, when the output that
follows it starts with the same bytes (terminal escape sequences before the
echo are skipped). Input whose echo does not come -- a password prompt turned
echo off -- is recorded as a count of hidden bytes once ``window`` has passed,
or at once when other output comes instead. Control bytes (Enter, Ctrl-C,
arrows, backspace) are never secret and are recorded as they are.

Events leave in the order they happened; a pending keystroke holds back the
events after it for at most the window (recording delay, never the user's).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from sshtrail.events import Event, Input, MaskedInput, Output, SealedInput

#: Seals masked bytes typed at ``t`` to the escrow key (``sshtrail/escrow.py``).
Seal = Callable[[bytes, int], bytes]

#: What a terminal may print before the echo: escape sequences (cursor moves,
#: colours) and line ends (the echo of an Enter typed before).
_ESCAPE: Final = re.compile(
    rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])|[\r\n]+"
)
#: Runs of bytes that are never secret: C0 controls, DEL, and escape sequences.
_CONTROL: Final = re.compile(rb"(?:\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?|[\x00-\x1a\x1c-\x1f\x7f])+")
#: Held events beyond this many bytes are released, pending keystrokes masked.
MAX_HELD_BYTES: Final = 1 << 20


@dataclass(slots=True)
class _Typed:
    t: int
    data: bytes
    matched: int = 0
    verdict: bool | None = None  # True echoed, False masked, None undecided


class EchoMasker:
    """Orders a PTY session's events and masks the input that was not echoed."""

    def __init__(self, window_ns: int, seal: Seal | None = None) -> None:
        self.window_ns = window_ns
        self._seal = seal
        self._held: deque[_Typed | Event] = deque()
        self._held_bytes = 0

    @property
    def deadline(self) -> int | None:
        """When the oldest undecided keystroke must be decided (ns, same clock as ``t``)."""
        for item in self._held:
            if isinstance(item, _Typed) and item.verdict is None:
                return item.t + self.window_ns
        return None

    def input(self, t: int, data: bytes) -> list[Event]:
        """Record typed bytes; returns the events now ready, in order."""
        position = 0
        for control in _CONTROL.finditer(data):
            if control.start() > position:
                self._hold(_Typed(t, data[position : control.start()]))
            self._hold(Input(t, control.group()))
            position = control.end()
        if position < len(data):
            self._hold(_Typed(t, data[position:]))
        return self._release()

    def output(self, t: int, data: bytes) -> list[Event]:
        """Record output; it confirms or refutes the echo of pending keystrokes."""
        rest = memoryview(data)
        for item in self._held:
            if not isinstance(item, _Typed) or item.verdict is not None:
                continue
            rest = _skip_escapes(rest)
            if not rest:
                break
            before = item.data[item.matched - 1] if item.matched else None
            matched, used, diverged = _echo_of(item.data[item.matched :], rest, before)
            item.matched += matched
            rest = rest[used:]
            if item.matched == len(item.data):
                item.verdict = True
                continue
            if not diverged:
                break  # the echo so far, the rest to come
            # Something else came where the echo should be: this key was not echoed, and
            # neither was any typed after it -- a terminal echoes keys in the order they
            # came, so a later key's byte further on (the next prompt's first letter, a
            # password's ``r`` and ``ready> ``) is a coincidence, not its echo.
            self._refute_from(item)
            break
        self._hold(Output(t, data))
        if self._held_bytes > MAX_HELD_BYTES:
            self._decide_all(False)
        return self._release()

    def expire(self, now: int) -> list[Event]:
        """Mask keystrokes whose window has passed; returns the events now ready."""
        for item in self._held:
            if isinstance(item, _Typed) and item.verdict is None and now >= item.t + self.window_ns:
                item.verdict = False
        return self._release()

    def passthrough(self, event: Event) -> list[Event]:
        """Queue an event that needs no decision (resize, exit ...) behind what is held."""
        self._hold(event)
        return self._release()

    def flush(self) -> list[Event]:
        """Session over: whatever was not echoed by now is masked."""
        self._decide_all(False)
        return self._release()

    def _hold(self, item: _Typed | Event) -> None:
        self._held.append(item)
        self._held_bytes += len(getattr(item, "data", b""))

    def _verdict(self, typed: _Typed) -> Event:
        """What typed bytes become in the recording: echoed, masked, or sealed."""
        if typed.verdict:
            return Input(typed.t, typed.data)
        if self._seal is not None:
            return SealedInput(typed.t, len(typed.data), self._seal(typed.data, typed.t))
        return MaskedInput(typed.t, len(typed.data))

    def _refute_from(self, first: _Typed) -> None:
        """``first`` and every undecided keystroke after it: not echoed."""
        after = False
        for item in self._held:
            after = after or item is first
            if after and isinstance(item, _Typed) and item.verdict is None:
                item.verdict = False

    def _decide_all(self, verdict: bool) -> None:
        for item in self._held:
            if isinstance(item, _Typed) and item.verdict is None:
                item.verdict = verdict

    def _release(self) -> list[Event]:
        ready: list[Event] = []
        while self._held:
            head = self._held[0]
            if isinstance(head, _Typed):
                if head.verdict is None:
                    break
                ready.append(self._verdict(head))
            else:
                ready.append(head)
            self._held.popleft()
            self._held_bytes -= len(getattr(head, "data", b""))
        return ready


def _echo_of(need: bytes, got: memoryview, before: int | None) -> tuple[int, int, bool]:
    """How much of ``need`` (typed bytes) the output ``got`` echoes: (bytes of ``need``
    echoed, bytes of ``got`` they took, whether ``got`` then shows something else).

    A line editor redraws a line that reaches the terminal's edge: bash writes the
    character that wraps, a carriage return and that character again (``x\\rx``), or a
    space and a carriage return (`` \\r``) when it has nothing more to draw; terminal
    escape sequences and line ends may come between too. Those are part of the echo,
    not a refusal of it: a line typed ahead, wider than the terminal, is recorded as
    typed (a full run masked a 118-byte ``rm`` this way)."""
    i = j = 0
    while i < len(need) and j < len(got):
        if same := _common_prefix(need, i, got, j):
            i, j = i + same, j + same
            before = need[i - 1]
        elif got[j] == 0x0D and before is not None and got[j + 1 : j + 2] == bytes([before]):
            j += 2  # the wrapping character again, after the carriage return
        elif bytes(got[j : j + 2]) == b" \r":
            j += 2
        elif match := _ESCAPE.match(got, j):
            j = match.end()
        else:
            return i, j, True
    return i, j, False


def _common_prefix(a: bytes, i: int, b: memoryview, j: int) -> int:
    """How many bytes ``a[i:]`` and ``b[j:]`` share at their start (compared in C, by
    halves: a paste of a megabyte is not walked byte by byte)."""
    high = min(len(a) - i, len(b) - j)
    if b[j : j + high] == a[i : i + high]:
        return high
    low = 0  # a[i:i+low] is shared, a[i:i+high] is not
    while high - low > 1:
        middle = (low + high) // 2
        if b[j + low : j + middle] == a[i + low : i + middle]:
            low = middle
        else:
            high = middle
    return low


def _skip_escapes(data: memoryview) -> memoryview:
    while match := _ESCAPE.match(data):
        data = data[match.end() :]
    return data
