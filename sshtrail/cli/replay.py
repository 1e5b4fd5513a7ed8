"""``sshtrail replay``: play a stored session in the auditor's terminal with its timing.

Keys while playing: space pauses and resumes, ``+``/``-`` double or halve
the speed, ``q`` quits; the speed and a pause are shown in the window title,
and a line on stderr says where it ended. A terminal smaller than the
recording is warned about (``--resize`` asks it to grow). Output before
``--from`` is written at once, so the screen is what it was at that moment;
a ``--from`` after the end is an error. When stdout is not a terminal the
output is written without delays (what ``export --format raw`` gives, from
``--from`` on).

Session bytes reach the terminal as they drew the screen, through
:class:`~sshtrail.termfilter.TerminalFilter`: nothing in them can make the
auditor's terminal answer, set its clipboard or title, or leave it in
another mode; what the session changed is undone at the end. ``--raw``
writes the bytes exactly as recorded (for a pipe, or a terminal you trust
with them).
A forwarded connection (``ssh -L``) carried bytes for some other program, not
for a terminal: replay refuses to write those to one and names the command
that exports them instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import BinaryIO

from sshtrail.cli.evidence import events_of
from sshtrail.commandkit.reading import stored_session
from sshtrail.errors import InvalidError
from sshtrail.events import Event, Exec, Output, Resize, Start
from sshtrail.settings import Settings
from sshtrail.termfilter import TerminalFilter
from sshtrail.textsafe import visible
from sshtrail.timespec import clock

RESET = b"\x1b[0m\x1b[?25h\r\n"  # attributes off, cursor shown


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    stored = stored_session(settings, args.session)
    events = list(events_of(stored))
    forwarded = next((e for e in events if isinstance(e, Exec) and e.mode == "direct-tcpip"), None)
    if forwarded is not None and sys.stdout.isatty():
        where = visible(forwarded.command.decode("utf-8", "replace"))
        raise InvalidError(
            f"session {args.session} is a connection forwarded to {where}, not a terminal "
            "session: its bytes were not meant for a terminal and are not written to one. "
            f"To look at them: sshtrail export {args.session} --format raw | hexdump -C"
        )
    outputs = [(e.t / 1e9, e.data) for e in events if isinstance(e, Output)]
    length = max((e.t for e in events), default=0) / 1e9
    if args.start > length:
        raise InvalidError(
            f"--from {clock(args.start)} is after the end of the session, which lasts "
            f"{clock(length)}"
        )
    # A forwarded connection's bytes were not for a terminal: a pipe gets them as they were.
    out = Screen(sys.stdout.buffer, raw=args.raw or forwarded is not None)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        for at, data in outputs:
            if at >= args.start:
                out.write(data)
        out.finish()
        return 0
    _fit(recorded_size(events), out, resize=args.resize)
    with _keys() as keys:
        reached = _play(
            outputs, out, keys, speed=args.speed, idle_limit=args.idle_limit, start=args.start
        )
    ended = "ended" if reached >= length else f"stopped at {clock(reached)} of"
    print(f"sshtrail replay: {ended} {clock(length)} (session {args.session})", file=sys.stderr)
    return 0


def recorded_size(events: list[Event]) -> tuple[int, int] | None:
    """The largest terminal the session had (columns, rows); None without a PTY."""
    sizes = [(e.cols, e.rows) for e in events if isinstance(e, Start | Resize) and e.cols > 0]
    if not sizes:
        return None
    return max(c for c, _ in sizes), max(r for _, r in sizes)


def _fit(size: tuple[int, int] | None, out: Screen, *, resize: bool) -> None:
    """Warn when this terminal is smaller than the recording (its lines would wrap, its
    screens scroll); with ``resize``, ask the terminal to grow first."""
    if size is None:
        return
    columns, rows = size
    here = os.get_terminal_size(sys.stdout.fileno())
    if here.columns >= columns and here.lines >= rows:
        return
    if resize:
        out.control(f"\x1b[8;{max(rows, here.lines)};{max(columns, here.columns)}t".encode())
        time.sleep(0.2)  # the window manager takes a moment
        here = os.get_terminal_size(sys.stdout.fileno())
        if here.columns >= columns and here.lines >= rows:
            return
    print(
        f"sshtrail replay: the recording is {columns}x{rows}, this terminal "
        f"{here.columns}x{here.lines}: lines will wrap and screens scroll. Enlarge the "
        "window, or use --resize; starting in 2 s.",
        file=sys.stderr,
        flush=True,
    )
    time.sleep(2)


class Screen:
    """Where session bytes go: through a :class:`TerminalFilter` unless ``raw``;
    :meth:`finish` undoes what the session changed for good."""

    def __init__(self, out: BinaryIO, raw: bool) -> None:
        self._out = out
        self._filter = None if raw else TerminalFilter()

    def write(self, data: bytes) -> None:
        self._out.write(data if self._filter is None else self._filter.feed(data))

    def flush(self) -> None:
        self._out.flush()

    def control(self, data: bytes) -> None:
        """The replay's own bytes (its status): not the session's, never filtered."""
        self._out.write(data)
        self._out.flush()

    def finish(self) -> None:
        if self._filter is not None:
            self._out.write(self._filter.finish())
        self._out.flush()


def _play(
    outputs: list[tuple[float, bytes]],
    out: Screen,
    keys: int,
    *,
    speed: float,
    idle_limit: float,
    start: float,
) -> float:
    """Play from ``start``; the offset reached (the end, or where ``q`` stopped it)."""
    out.write(b"".join(data for at, data in outputs if at < start))  # the screen at --from
    out.flush()
    previous = reached = start
    _status(out, f"playing at {speed:g}x (space pause, + faster, - slower, q quit)")
    try:
        for at, data in outputs:
            if at < start:
                continue
            wait = min(at - previous, idle_limit) / speed
            previous = at
            while wait > 0:
                started = time.monotonic()
                key = _key(keys, wait)
                wait -= time.monotonic() - started
                if key == b"q":
                    return reached
                if key == b" ":
                    _status(out, f"paused at {clock(reached)} (space resumes, q quits)")
                    while (key := _key(keys, None)) not in (b" ", b"q"):
                        pass
                    if key == b"q":
                        return reached
                    _status(out, f"playing at {speed:g}x")
                elif key in (b"+", b"="):
                    speed, wait = speed * 2, wait / 2
                    _status(out, f"playing at {speed:g}x")
                elif key == b"-":
                    speed, wait = speed / 2, wait * 2
                    _status(out, f"playing at {speed:g}x")
            out.write(data)
            out.flush()
            reached = at
        return float("inf")
    finally:
        out.finish()
        out.control(RESET)


def _status(out: Screen, text: str) -> None:
    # Shown in the window title: writing it into the screen would change the replay.
    out.control(f"\x1b]2;sshtrail replay: {text}\x07".encode())


def _key(fd: int, timeout: float | None) -> bytes | None:
    ready, _, _ = select.select([fd], [], [], timeout)
    return os.read(fd, 1) if ready else None


@contextlib.contextmanager
def _keys() -> Iterator[int]:
    """stdin in cbreak mode (keys one at a time, no echo), restored afterwards."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
