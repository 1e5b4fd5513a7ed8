"""Command policy in a terminal shell: the operator's Enter held until the line is decided.

In a PTY session the gateway cannot know the command from the keys alone (line
editing, history recall, tab completion, pastes): it reads the line the terminal
*shows*, with the same reader the index uses (:meth:`sshtrail.terminal.Terminal.
line_at_cursor`), fed the target's output. When an Enter (``\\r`` or ``\\n``) comes, the
keys before it are sent on, and the Enter is held until their echo has come back
(output after the last key, then quiet for :data:`ECHO_QUIET_S`; at most
:data:`ECHO_WAIT_S` once the session has echoed keys, :data:`NO_ECHO_WAIT_S` before):
an Enter typed as people type, after its line showed, is decided
at once. Then the line at the cursor, minus its prompt, is decided:

* accept -- the Enter is sent;
* warn -- the rule's message is written on the operator's terminal, then the Enter
  is sent;
* reject -- the Enter is not sent: the message is written, a Ctrl-C is sent so the
  shell drops the line and draws a new prompt, and what else the operator had sent
  with that Enter (the rest of a paste) is dropped too;
* review -- the Enter is held while an auditor is asked (``producer/reviews.py``):
  the operator is told so; keys typed meanwhile are dropped, but Ctrl-C, which
  cancels; approved, the Enter is sent and the command runs as typed; denied,
  unanswered in time or cancelled, the line is dropped as a rejected one is. A line
  needing review inside a paste that holds a newline is rejected: it must be run on
  its own, with an Enter.

A line that ends in a backslash, or leaves a quote or ``$(`` open, continues on the
next (``tou\\`` Enter ``ch x`` runs
``touch x``): the pieces are decided together. Each line of a paste is decided as it is
shown (the shell runs each); a rejected one inside a bracketed paste closes the paste
before the Ctrl-C. While a full-screen program owns the screen, keys are its own and are
not held. Input waits only in this session; output flows meanwhile.

Why one module of about 500 lines: the gate is one state machine over one line --
the keys held, the Enter waiting, a paste, a continuation, a review -- fed by two
streams (keys and the screen) whose order only it sees; the reading of the screen
is ``sshtrail/terminal.py``'s and the rules are ``sshtrail/commandpolicy.py``'s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from producer.reviews import Review, Verdict
from sshtrail.commandpolicy import Decision
from sshtrail.shellwords import unfinished
from sshtrail.terminal import Terminal

log = logging.getLogger(__name__)

#: Output is read this long after it came (the Enter then finds the screen current).
READ_AFTER_S = 0.01
#: Output quiet this long, after output that came after the last key sent: the keys'
#: echo is on screen.
ECHO_QUIET_S = 0.03
#: The longest an Enter waits for that echo before the line is read as it is (keys
#: typed without echo, as a password, never get one).
ECHO_WAIT_S = 2.0
#: ... and before any key of the session was echoed, this long. (Once it echoes, a line
#: typed without echo, a password, waits the whole :data:`ECHO_WAIT_S`: a late echo
#: under load must not be read as none.)
NO_ECHO_WAIT_S = 0.5
_PASTE_START, _PASTE_END = b"\x1b[200~", b"\x1b[201~"
_CTRL_C = b"\x03"
_OPERATE = b"\x0f"
#: The keys of one line kept for its reading as typed; a longer line is read from the
#: screen only.
MAX_KEYS = 64 << 10
#: What runs the line: Enter (CR or LF), and Ctrl-O (bash: run it, then fetch the next).
_ENTERS = b"\r\n\x0f"
#: Ctrl-X Ctrl-E: bash edits the line in an editor and runs what comes back, unseen.
_EDIT = b"\x18\x05"
#: How a shell turns bracketed paste on and off (only then do keys mark a paste).
_BRACKETED_ON, _BRACKETED_OFF = b"\x1b[?2004h", b"\x1b[?2004l"
#: An unfinished line is joined with this many next ones at most (the gate may have
#: misread it: typed ahead of a prompt, text that is not the shell's).
MAX_CONTINUED_LINES = 8
#: Pasted bytes kept for the decision; a longer paste is decided on its first ones.
MAX_PASTE = 1 << 20


@dataclass(slots=True)
class _Reviewing:
    """An Enter held while its line is reviewed."""

    decision: Decision
    line: str
    enter: bytes
    review: Review | None = None


#: Asks for a review of a line: ``(decision, line, done) -> Review`` (None if it could
#: not be asked; ``done`` was then called already).
AskReview = Callable[[Decision, str, Callable[[Verdict], None]], Review | None]


class LineGate:
    """One PTY shell session's keys on their way to the target.

    ``decide(line)`` is the policy's decision (None: no rules readable: reject),
    ``send(data)`` writes to the target, ``tell(text)`` writes on the operator's
    terminal (and records it), ``hold(on)`` pauses or resumes reading the operator's
    keys, ``decided(decision, line)`` reports each decision but accept,
    ``review(decision, line, done)`` asks an auditor about a line and
    ``reviewed(decision, line, verdict)`` reports the answer.
    """

    def __init__(
        self,
        size: tuple[int, int],
        *,
        decide: Callable[[str], Decision | None],
        send: Callable[[bytes], None],
        tell: Callable[[str], None],
        hold: Callable[[bool], None],
        decided: Callable[[Decision | None, str], None],
        review: AskReview,
        reviewed: Callable[[Decision, str, Verdict], None],
    ) -> None:
        self._terminal = Terminal(size[0], size[1], pty=True, input_kind=None)
        self._decide, self._send, self._tell = decide, send, tell
        self._hold, self._decided = hold, decided
        self._review, self._reviewed = review, reviewed
        self._reviewing: _Reviewing | None = None  # an Enter held for an auditor
        self._closed = False
        self._queued = bytearray()  # keys after a held Enter
        self._waiting: asyncio.Handle | None = None
        self._since = 0.0  # when the keys before the held Enter were sent
        self._last_output = 0.0
        self._last_key = 0.0  # when keys were last sent on
        self._last_printable = ""  # the last key sent, if a printable character
        self._echoing = (
            False  # keys typed in this session were echoed (then slow echo is waited for)
        )
        self._reading: asyncio.Handle | None = None  # the output read when it pauses
        self._continued = ""  # a line that ended in a backslash
        self._paste: bytearray | None = None  # the text of a bracketed paste under way
        self._bracketed = False  # the shell has bracketed paste on
        self._ctrl_x = False  # the last key sent was Ctrl-X
        self._paste_before = ""  # the line on screen when it began
        #: The keys sent since the last line ended (Enter, Ctrl-O, Ctrl-C): the line as
        #: typed, a reading of its own when the screen may not show it all.
        self._keys = bytearray()

    def output(self, data: bytes) -> None:
        """What the target showed (fed to the reader; the relay writes it on). The reader
        reads it once output pauses, so an Enter finds the screen current."""
        now = time.monotonic()
        self._terminal.output(data, int(now * 1e9))
        on, off = data.rfind(_BRACKETED_ON), data.rfind(_BRACKETED_OFF)
        if on != off:  # the shell turned bracketed paste on or off (the last one holds)
            self._bracketed = on > off
        if self._last_key > self._last_output:
            self._echoing = True  # output after keys: this line's keys are echoed
        self._last_output = now
        if self._reading is None:
            loop = asyncio.get_running_loop()
            self._reading = loop.call_later(READ_AFTER_S, self._read)

    def _read(self) -> None:
        self._reading = None
        self._terminal.flush()
        self._terminal.found.clear()  # the gateway keeps no documents

    def resize(self, columns: int, rows: int) -> None:
        self._terminal.resize(columns, rows)

    def input(self, data: bytes) -> None:
        """Keys the operator typed: sent on, except an Enter (or the end of a bracketed
        paste), held until decided. While a line is reviewed, keys are dropped, but a
        Ctrl-C, which cancels the review."""
        if self._reviewing is not None:
            review = self._reviewing.review
            if _CTRL_C in data and review is not None:
                review.cancel("cancelled", "by the operator (Ctrl-C)")
            return
        if self._waiting is not None:
            self._queued += data
            return
        at, stop = self._stop_in(data)
        if at < 0:
            self._typed(data)
            return
        if stop != _PASTE_END and self._terminal.line_at_cursor() is None:
            self._typed(data[: at + 1])  # a full-screen program's key: its own
            self.input(data[at + 1 :])
            return
        self._typed(data[:at])
        self._queued += data[at:]
        if stop == _EDIT:
            self._queued.clear()
            self._ctrl_x = False
            self._tell(
                "\r\nsshtrail: editing the line in an editor (Ctrl-X Ctrl-E) is not allowed "
                "here: the command policy could not see what it runs\r\n"
            )
        elif stop == _PASTE_END:
            self._paste_ended()
        else:
            self._wait()

    def close(self) -> None:
        self._closed = True
        for handle in (self._waiting, self._reading):
            if handle is not None:
                handle.cancel()
        self._waiting = self._reading = None
        if self._reviewing is not None and self._reviewing.review is not None:
            self._reviewing.review.cancel("ended", "the session ended")

    # -- the Enter held --------------------------------------------------------------

    def _stop_in(self, data: bytes) -> tuple[int, bytes]:
        """Where ``data`` must stop until a decision, and why: an Enter (outside a
        bracketed paste, where it is a newline of the pasted text), or the end of a
        paste; (-1, b"") if nowhere. The text of a paste is kept as it passes."""
        at = 0
        while at < len(data):
            if data[at] == 0x05 and (data[at - 1] == 0x18 if at else self._ctrl_x):
                return at, _EDIT
            if self._paste is None:
                if self._bracketed and data.startswith(_PASTE_START, at):
                    self._paste = bytearray()
                    shown = self._terminal.line_at_cursor()  # typed before the paste
                    self._paste_before = shown[0] if shown is not None else ""
                    at += len(_PASTE_START)
                    continue
                if data[at] in _ENTERS:
                    return at, data[at : at + 1]
            elif data.startswith(_PASTE_END, at):
                return at, _PASTE_END
            elif len(self._paste) <= MAX_PASTE:
                self._paste.append(data[at])
            at += 1
        self._ctrl_x = data.endswith(b"\x18")
        return -1, b""

    def _paste_ended(self) -> None:
        """A bracketed paste is complete and its end held: the shell will run each of its
        lines as typed after what the line held before it, so each is decided now."""
        pasted = bytes(self._paste or b"")
        self._paste = None
        if len(pasted) > MAX_PASTE:
            self._reject_unread(f"a paste of more than {MAX_PASTE:,} bytes is not let through")
            return
        text = pasted.decode("utf-8", "replace")
        lines = re.split(r"[\r\n]", re.sub(r"\\\r\n?|\\\n", "", text))
        runs = len(lines) > 1  # a newline in it: the shell may run what was pasted
        lines = _merged(lines)
        if self._paste_before:  # the first line follows what was typed before it, with
            first = lines[0]  # a blank between or not (the screen does not tell)
            lines[0:1] = [f"{self._paste_before}{first}", f"{self._paste_before} {first}"]
        decided = [(line, self._decide(line)) for line in lines if line.strip()]
        end, rest = bytes(self._queued[: len(_PASTE_END)]), bytes(self._queued[len(_PASTE_END) :])
        self._queued.clear()
        for line, decision in decided:
            if decision is None or decision.action == "reject":
                self._reject(decision, line, b"", in_paste=True)
                return
        if runs:
            for line, decision in decided:
                if decision is not None and decision.action == "review":
                    self._reject(decision, line, b"", in_paste=True, alone=True)
                    return
        for line, decision in decided:
            if decision is not None and decision.action == "warn":
                self._warned(decision, line)
        self._typed(end)
        self.input(rest)

    def _typed(self, data: bytes) -> None:
        if data:
            self._keys_sent(data)
            self._terminal.input(data, time.monotonic_ns())
            self._last_key = time.monotonic()
            last = data[-1:]
            self._last_printable = last.decode() if b" " < last < b"\x7f" else ""
            self._send(data)

    def _keys_sent(self, data: bytes) -> None:
        """Keep the keys of the line being typed: what follows the last key that ends a
        line (the shell, or the terminal driver, drops or runs what came before)."""
        ends = max(data.rfind(key) for key in (b"\r", b"\n", _OPERATE, _CTRL_C))
        if ends >= 0:
            self._keys.clear()
            data = data[ends + 1 :]
        if len(self._keys) <= MAX_KEYS:
            self._keys += data

    def _wait(self) -> None:
        """Hold the Enter at the head of the queue until the screen shows its line."""
        self._hold(True)
        self._since = time.monotonic()
        self._waiting = asyncio.get_running_loop().call_soon(self._check)

    def _check(self) -> None:
        """Decide once the keys sent have been echoed (output came after the last of
        them) and the output has been quiet a moment, or once waited long enough."""
        now = time.monotonic()
        echoed = self._last_output >= self._last_key and (
            # the last key typed, if a printable one, is what the cursor follows: its
            # echo has come, not only an earlier key's
            not self._last_printable or self._terminal.before_cursor() == self._last_printable
        )
        quiet = now - self._last_output
        limit = ECHO_WAIT_S if self._echoing else NO_ECHO_WAIT_S
        if (not echoed or quiet < ECHO_QUIET_S) and now - self._since < limit:
            wait = ECHO_QUIET_S - quiet if echoed else ECHO_QUIET_S / 3
            self._waiting = asyncio.get_running_loop().call_later(max(wait, 0.001), self._check)
            return
        self._waiting = None
        self._enter()

    def _enter(self) -> None:
        enter, rest = bytes(self._queued[:1]), bytes(self._queued[1:])
        self._queued.clear()
        shown = self._terminal.line_at_cursor()
        self._terminal.found.clear()  # the gateway keeps no documents
        if shown is None:  # a full-screen program's key
            self._typed(enter)
            self._hold(False)
            self.input(rest)
            return
        readings = [shown[0]] if shown[1] else _readings(shown[0])
        typed = _typed_line(bytes(self._keys))
        if typed is not None and _ends_with_shown(typed.strip(), shown[0]):
            # Keys typed ahead of a shell that had not started yet were echoed where
            # the screen later redrew (``exec dash`` and a line typed at once): the
            # shell reads them all, the screen shows their end only. (Only then: keys
            # the screen never showed, a password typed blind, are never read.)
            readings.insert(0, typed)
        if self._continued.count("\n") >= MAX_CONTINUED_LINES:
            self._continued = ""  # a quote the shell surely closed, misread: let it go
        lines = [self._continued + reading for reading in readings]
        line = lines[-1]
        if self._continued:  # and as if alone: a continuation misread must not hide it
            lines += readings
        # And as the session's aliases make it (``alias ll='rm -rf'``, then ``ll /srv``).
        lines += [e for each in list(lines) if (e := self._terminal.expand_aliases(each))]
        joined = _joined_with_next(line)
        # Each reading decided as the shell would take it: one left unfinished is the
        # start of a command the next line completes; one that is not runs at this Enter.
        decided = [(each, _joined_with_next(each) is None) for each in lines]
        decisions = [
            self._decide(each if runs else each.removesuffix("\\")) for each, runs in decided
        ]
        decision = _strictest(decisions)
        if decision is None or decision.action == "reject":
            self._continued = ""
            self._reject(decision, line, rest)
            return
        # A review binds on every reading this Enter would run, not only the likeliest:
        # a continuation misread (keys typed ahead of a prompt, a stray quote on screen)
        # must not let a held command run as the "start" of a longer one.
        held = [
            (each, found)
            for (each, runs), found in zip(decided, decisions, strict=True)
            if runs and found is not None and found.action == "review"
        ]
        if held:
            self._continued = ""
            self._ask(held[-1][1], held[-1][0], enter)
            return
        if decision.action == "warn":
            self._warned(decision, line)
        self._continued = joined or ""
        self._typed(enter)
        self._hold(False)
        self.input(rest)

    def _reject(
        self,
        decision: Decision | None,
        line: str,
        rest: bytes,
        in_paste: bool = False,
        alone: bool = False,
    ) -> None:
        """The line is not run: said why, dropped at the shell with a Ctrl-C (after
        closing a paste, or the shell would take it as pasted text), and what came
        after it dropped too. ``alone``: a line needing review, pasted with a newline."""
        self._decided(decision, line)
        why = decision.message if decision is not None else "the command policy cannot be read"
        if alone:
            why += " (it needs an auditor's approval: run it on its own, not in a paste)"
        self._tell(f"\r\nsshtrail: {why}\r\n")
        self._drop_line(in_paste)
        if rest.strip(b"\r\n"):
            self._tell("sshtrail: (what was sent after it was dropped)\r\n")
        self._hold(False)

    def _drop_line(self, in_paste: bool = False) -> None:
        drop = (_PASTE_END if in_paste or self._paste is not None else b"") + _CTRL_C
        self._paste = None
        self._keys_sent(drop)
        self._terminal.input(drop, time.monotonic_ns())
        self._send(drop)

    def _ask(self, decision: Decision, line: str, enter: bytes) -> None:
        """Hold the Enter while an auditor reviews the line (what was sent after it is
        dropped: it would be typed into the command, or after it, unseen)."""
        self._decided(decision, line)
        self._tell(f"\r\nsshtrail: {decision.message}\r\n")
        reviewing = self._reviewing = _Reviewing(decision, line, enter)
        review = self._review(decision, line, self._answered)
        if self._reviewing is not reviewing:
            return  # ended already: it could not be asked
        reviewing.review = review
        name = decision.rule.name if decision.rule is not None else "?"
        shown = review.id[:8] if review is not None else "?"
        self._tell(
            f"sshtrail: waiting for approval (rule {name}, request {shown})... Ctrl-C cancels\r\n"
        )
        self._hold(False)  # keys are read again: Ctrl-C cancels, others are dropped

    def _answered(self, verdict: Verdict) -> None:
        """The review of the held line ended: run it, or drop it as a rejected line."""
        reviewing, self._reviewing = self._reviewing, None
        if reviewing is None:
            return
        self._reviewed(reviewing.decision, reviewing.line, verdict)
        if self._closed:
            return
        if verdict.approved:
            self._tell(f"sshtrail: {verdict.describe()}\r\n")
            self._typed(reviewing.enter)
        else:
            self._tell(f"sshtrail: not run: review {verdict.describe()}\r\n")
            self._drop_line()
        self._hold(False)

    def _reject_unread(self, why: str) -> None:
        """A paste the policy cannot read whole: dropped, as a rejected line is."""
        self._queued.clear()
        self._tell(f"\r\nsshtrail: {why}: the command policy could not read it\r\n")
        drop = _PASTE_END + _CTRL_C
        self._keys_sent(drop)
        self._terminal.input(drop, time.monotonic_ns())
        self._send(drop)
        self._hold(False)

    def _warned(self, decision: Decision, line: str) -> None:
        self._decided(decision, line)
        name = decision.rule.name if decision.rule is not None else "?"
        self._tell(f"\r\nsshtrail: warning (rule {name}): {decision.message}")


#: What ends a prompt, for a line whose prompt the reader could not tell apart (keys
#: typed before the prompt was drawn): ``$ ``, ``# ``, ``% ``, ``> `` (a continuation).
_PROMPT_END = re.compile(r"^.{0,80}?[$#%>] ")
_PROMPT_ENDS = re.compile(r"[$#%>] ")
#: bash's history search (Ctrl-R), which Enter runs the found line of.
_SEARCH = re.compile(r"^\((?:failed )?(?:reverse|i)-i-search\)`[^']*': ")
_RANK = {"accept": 0, "warn": 1, "review": 2, "reject": 3}


def _readings(line: str) -> list[str]:
    """The ways a line whose prompt is unknown may read: as it is, and without what
    looks like a prompt at its start; the last is the likeliest."""
    found = _SEARCH.search(line)
    if found:
        return [line, line[found.end() :]]
    cut = _PROMPT_END.match(line)
    return [line, line[cut.end() :]] if cut else [line]


def _ends_with_shown(typed: str, shown: str) -> bool:
    """Whether the line ``typed`` is longer than what the screen shows of it, ending
    with it: ``shown`` after a prompt (any text up to ``$ ``, ``# ``, ``% ``, ``> ``)."""
    cuts = [0] + [found.end() for found in _PROMPT_ENDS.finditer(shown, 0, 82)]
    for cut in cuts:
        end = shown[cut:].strip()
        if end and len(end) < len(typed) and typed.endswith(end):
            return True
    return False


def _typed_line(keys: bytes) -> str | None:
    """The line the keys typed since the last one make, as a terminal driver or a line
    editor edits it with backspace, Ctrl-U and Ctrl-W; None when other keys (arrows,
    Tab, Ctrl-A, history, a paste) make it more than the keys say."""
    if _OTHER_KEYS.search(keys):
        return None
    line: list[str] = []
    for char in keys.decode("utf-8", "replace"):
        if char in "\x7f\b":
            del line[-1:]
        elif char == "\x15":  # Ctrl-U
            line.clear()
        elif char == "\x17":  # Ctrl-W: the word before the cursor, and blanks before it
            while line and line[-1] == " ":
                line.pop()
            while line and line[-1] != " ":
                line.pop()
        else:
            line.append(char)
    return "".join(line)


#: Keys a line typed as it is cannot hold: controls but backspace, Ctrl-U, Ctrl-W.
_OTHER_KEYS = re.compile(rb"[\x00-\x07\x09-\x14\x16\x18-\x1f]")


def _merged(lines: list[str]) -> list[str]:
    """Pasted lines as the shell runs them: a line that leaves a quote or ``$(`` open
    goes on in the next."""
    merged: list[str] = []
    for line in lines:
        if merged and unfinished(merged[-1]):
            merged[-1] += "\n" + line
        else:
            merged.append(line)
    return merged


def _joined_with_next(line: str) -> str | None:
    """What the shell keeps of ``line`` when it reads on to the next one (a trailing
    backslash, or a quote or ``$(`` left open: :func:`sshtrail.shellwords.unfinished`);
    None when the Enter runs it."""
    if not unfinished(line):
        return None
    if line.endswith("\\") and not unfinished(line[:-1]):
        return line[:-1]  # backslash-newline: the two lines are one, nothing between
    return line + "\n"  # a newline inside the open quote is part of it


def _strictest(decisions: list[Decision | None]) -> Decision | None:
    """Of the decisions on the readings of one line, the strictest (None -- no rules
    readable -- before any)."""
    if any(decision is None for decision in decisions):
        return None
    found = [decision for decision in decisions if decision is not None]
    return max(found, key=lambda decision: _RANK[decision.action])
