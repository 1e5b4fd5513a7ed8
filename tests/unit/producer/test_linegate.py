"""The Enter held in a terminal shell until the line on screen is decided, against a
shell that echoes like a terminal (late, as over a network, when asked to)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from producer.linegate import NO_ECHO_WAIT_S, LineGate
from producer.reviews import Held, Review, Reviews, Verdict
from sshtrail import control
from sshtrail.commandpolicy import Decision, parse_policy

POLICY = parse_policy(
    b'[[rule]]\nname = "no-rm"\naction = "reject"\nmatch = ["rm"]\nmessage = "no rm"\n'
    b'[[rule]]\nname = "w"\naction = "warn"\nmatch = ["touch"]\nmessage = "watched"\n'
    b'[[rule]]\nname = "4e"\naction = "review"\nmatch = ["reboot"]\nmessage = "ask first"\n',
    "rules.toml",
)


class Shell:
    """A line-editing shell's echo as a terminal shows it: keys echoed, Enter ends the
    line (a backslash continues it), Ctrl-C drops it, a paste shown when it ends."""

    def __init__(
        self,
        echo_delay: float = 0.0,
        decide: bool = True,
        review_timeout_s: float = 30.0,
        topic_down: bool = False,
    ) -> None:
        self.published: list[control.Message] = []
        self.verdicts: list[tuple[str, Verdict]] = []
        self._topic_down = topic_down
        self.reviews = Reviews("gw", review_timeout_s, self._publish)
        self.sent = bytearray()
        self.told: list[str] = []
        self.decided: list[tuple[str, str]] = []
        self.ran: list[str] = []
        self._line = ""
        self._delay = echo_delay
        self._in_paste = False
        self.held = False
        self.gate = LineGate(
            (80, 24),
            decide=(lambda line: POLICY.decide("alice", "t1", line)) if decide else lambda _: None,
            send=self._receive,
            tell=self.told.append,
            hold=self._hold,
            decided=self._decided,
            review=self._review,
            reviewed=lambda _decision, line, verdict: self.verdicts.append((line, verdict)),
        )
        self.gate.output(b"\x1b[?2004h$ ")  # bash turns bracketed paste on at its prompt

    def _hold(self, on: bool) -> None:
        self.held = on

    def _publish(self, message: control.Message) -> str | None:
        if self._topic_down:
            return "the broker is down"
        self.published.append(message)
        return None

    def _review(
        self, decision: Decision, line: str, done: Callable[[Verdict], None]
    ) -> Review | None:
        name = decision.rule.name if decision.rule else "?"
        return self.reviews.ask(Held("s1", "alice", "t1", name, decision.message, line), done)

    def answer(self, approve: bool, auditor: str = "bob", session: str = "s1") -> str:
        """An auditor's answer to the review asked last; its request id."""
        [*_, asked] = [m for m in self.published if isinstance(m, control.ReviewRequest)]
        answer = control.ReviewAnswer(
            request_id=control.new_id(),
            at=control.now_ns(),
            review=asked.request_id,
            session=session,
            approve=approve,
            auditor=auditor,
            reason="checked",
        )
        self.reviews.answered(answer)
        return answer.request_id

    def results(self, request_id: str) -> list[str]:
        return [
            m.outcome
            for m in self.published
            if isinstance(m, control.Result) and m.request_id == request_id
        ]

    def _decided(self, decision: Decision | None, line: str) -> None:
        self.decided.append((decision.action if decision else "unreadable", line))

    def _echo(self, data: bytes) -> None:
        if self._delay:
            asyncio.get_running_loop().call_later(self._delay, self.gate.output, data)
        else:
            self.gate.output(data)

    def _receive(self, data: bytes) -> None:
        self.sent += data
        text = data.decode()
        while text:
            if text.startswith(("\x1b[200~", "\x1b[201~")):
                self._in_paste, text = text[4] == "0", text[6:]
                continue
            key, text = text[0], text[1:]
            if key == "\x03":
                self._line = ""
                self._echo(b"^C\r\n$ ")
            elif key == "\x0f":  # Ctrl-O: run the line (and fetch the next)
                self.ran.append(self._line)
                self._line = ""
                self._echo(b"\r\n$ ")
            elif key == "\x7f":
                self._line = self._line[:-1]
                self._echo(b"\b \b")
            elif key in "\r\n" and not self._in_paste:
                if self._line.endswith("\\"):
                    self._line = self._line[:-1]
                    self._echo(b"\r\n> ")
                else:
                    self.ran += self._line.splitlines() or [""]
                    self._line = ""
                    self._echo(b"\r\n$ ")
            elif key in "\r\n":  # pasted (bash, bracketed): kept, run at the next Enter
                self._line += "\n"
                self._echo(b"\r\n> ")
            else:
                self._line += key
                self._echo(key.encode())

    async def type(self, keys: str, pause: float = 0.005) -> None:
        for key in keys:
            self.gate.input(key.encode())
            await asyncio.sleep(pause)
        await self.settle()

    async def settle(self) -> None:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if not self.held:
                return


def run(coroutine: object) -> None:
    asyncio.run(coroutine)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [0.0, 0.1])
def test_a_typed_line_is_decided_as_shown_even_when_the_echo_is_late(delay: float) -> None:
    async def main() -> None:
        shell = Shell(echo_delay=delay)
        await shell.type("rx\x7fm victim\r")
        await shell.type("uptime\r")
        await shell.type("r\\\rm victim\r")  # continued: the pieces are decided together
        await shell.type("touch x\r")
        assert shell.ran == ["uptime", "touch x"]
        assert shell.decided == [
            ("reject", "rm victim"),
            ("reject", "rm victim"),
            ("warn", "touch x"),
        ]
        assert shell.told[0] == "\r\nsshtrail: no rm\r\n"
        assert shell.told[-1] == "\r\nsshtrail: warning (rule w): watched"

    run(main())


def test_a_paste_is_decided_line_by_line_and_what_follows_a_rejected_line_is_dropped() -> None:
    async def main() -> None:
        shell = Shell()
        shell.gate.input(b"true\rrm victim\rtouch x\r")
        await shell.settle()
        await asyncio.sleep(0.1)
        assert shell.ran == ["true"]
        assert shell.decided == [("reject", "rm victim")]
        assert "dropped" in shell.told[-1]

    run(main())


def test_a_bracketed_paste_is_decided_when_it_ends_and_closed_before_the_ctrl_c() -> None:
    async def main() -> None:
        shell = Shell()
        await shell.type("sudo ")
        shell.gate.input(b"\x1b[200~rm victim\x1b[201~")
        await shell.settle()
        assert shell.decided == [("reject", "sudo rm victim")]
        assert shell.sent.endswith(b"\x1b[201~\x03")  # the paste closed, then the line dropped
        shell.gate.input(b"\x1b[200~echo fine\x1b[201~")
        await shell.settle()
        await shell.type("\r")
        assert shell.ran == ["echo fine"]

    run(main())


def test_keys_for_a_full_screen_program_are_not_held() -> None:
    async def main() -> None:
        shell = Shell()
        shell.gate.output(b"\x1b[?1049h")  # vim takes the screen
        shell.gate.input(b"rm\r")
        assert not shell.held
        assert shell.sent == b"rm\r"
        assert shell.decided == []

    run(main())


def test_without_readable_rules_every_line_is_rejected() -> None:
    async def main() -> None:
        shell = Shell(decide=False)
        await shell.type("uptime\r")
        assert shell.ran == []
        assert shell.decided == [("unreadable", "uptime")]
        assert "cannot be read" in shell.told[0]

    run(main())


def test_keys_never_echoed_are_decided_after_a_bounded_wait() -> None:
    async def main() -> None:
        shell = Shell()
        shell._echo = lambda data: None  # type: ignore[method-assign]  # echo off
        loop = asyncio.get_running_loop()
        started = loop.time()
        shell.gate.input(b"rm secret\r")
        await shell.settle()
        assert loop.time() - started < NO_ECHO_WAIT_S + 0.3
        assert shell.ran == ["rm secret"]  # nothing was shown: there is nothing to read

    run(main())


def test_ctrl_o_is_an_enter_and_ctrl_x_ctrl_e_is_refused() -> None:
    async def main() -> None:
        shell = Shell()
        await shell.type("rm victim\x0f")
        assert shell.decided == [("reject", "rm victim")]
        assert shell.ran == []
        await shell.type("rm victim\x18\x05")  # edit-and-execute: the editor is unseen
        assert b"\x05" not in shell.sent
        assert "Ctrl-X Ctrl-E" in shell.told[-1]
        assert shell.ran == []

    run(main())


def test_a_paste_marker_a_shell_did_not_ask_for_is_a_key_like_another() -> None:
    async def main() -> None:
        shell = Shell()
        shell.gate.output(b"\x1b[?2004l")  # as dash, or bash with bracketed paste off
        await shell.type("\x1b[200~\r")
        await shell.type("rm victim\r")
        assert ("reject", "rm victim") in shell.decided

    run(main())


def test_a_paste_too_large_to_read_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("producer.linegate.MAX_PASTE", 1000)  # 1 MiB: the same, slower

    async def main() -> None:
        shell = Shell()
        shell.gate.input(b"\x1b[200~# " + b"x" * 1001 + b"\rrm victim\r\x1b[201~")
        await shell.settle()
        assert shell.sent.endswith(b"\x1b[201~\x03")
        assert "a paste of more than 1,000 bytes" in shell.told[-1]

    run(main())


def test_a_line_held_for_review_runs_once_another_person_approves_it() -> None:
    async def main() -> None:
        shell = Shell()
        await shell.type("reboot now\r")
        assert shell.ran == []
        assert not shell.held  # keys are read again: a Ctrl-C must reach the gate
        assert shell.decided == [("review", "reboot now")]
        assert "waiting for approval (rule 4e, request " in shell.told[-1]
        [asked] = [m for m in shell.published if isinstance(m, control.ReviewRequest)]
        assert (asked.operator, asked.command, asked.rule) == ("alice", "reboot now", "4e")
        await shell.type("x")  # typed while waiting: dropped
        own = shell.answer(approve=True, auditor="alice")
        assert shell.results(own) == ["refused"]  # not one's own command
        stray = shell.answer(approve=True, session="another")
        assert shell.results(stray) == ["refused"]
        assert shell.ran == []
        approved = shell.answer(approve=True)
        await shell.settle()
        assert shell.ran == ["reboot now"]
        assert shell.results(approved) == ["approved"]
        assert shell.results(asked.request_id) == ["approved"]  # the review ended
        assert [(line, v.outcome, v.auditor) for line, v in shell.verdicts] == [
            ("reboot now", "approved", "bob")
        ]
        assert shell.told[-1].startswith("sshtrail: approved by bob after ")
        again = shell.answer(approve=False)  # too late, or a replay
        assert shell.results(again) == ["refused"]
        assert shell.ran == ["reboot now"]

    run(main())


def test_a_denied_cancelled_or_unanswered_review_drops_the_line() -> None:
    async def main() -> None:
        shell = Shell(review_timeout_s=0.2)
        await shell.type("reboot\r")
        shell.answer(approve=False)
        await shell.settle()
        await shell.type("reboot\r")
        await shell.type("\x03")  # the operator cancels
        await shell.type("reboot\r")
        await asyncio.sleep(0.4)  # nobody answers
        await shell.type("uptime\r")
        assert shell.ran == ["uptime"]
        assert [v.outcome for _, v in shell.verdicts] == ["denied", "cancelled", "timed out"]
        assert shell.sent.count(b"\x03") == 3  # each line dropped at the shell
        assert sum("not run: review" in text for text in shell.told) == 3

    run(main())


def test_a_review_that_cannot_be_asked_drops_the_line_at_once() -> None:
    async def main() -> None:
        shell = Shell(topic_down=True)
        await shell.type("reboot\r")
        await shell.type("uptime\r")
        assert shell.ran == ["uptime"]
        [(_, verdict)] = shell.verdicts
        assert verdict.outcome == "unavailable"
        assert "the broker is down" in verdict.reason

    run(main())


def test_a_line_needing_review_is_not_run_from_a_paste_with_a_newline() -> None:
    async def main() -> None:
        shell = Shell()
        shell.gate.input(b"\x1b[200~reboot\n\x1b[201~")
        await shell.settle()
        assert shell.sent.endswith(b"\x1b[201~\x03")  # the paste closed, then dropped
        await shell.type("\r")
        assert shell.ran == [""]
        assert "run it on its own" in shell.told[0]
        assert not [m for m in shell.published if isinstance(m, control.ReviewRequest)]

    run(main())


def test_a_session_ending_while_its_line_is_reviewed_ends_the_review() -> None:
    async def main() -> None:
        shell = Shell()
        await shell.type("reboot\r")
        shell.gate.close()
        [(_, verdict)] = shell.verdicts
        assert verdict.outcome == "ended"
        assert len(shell.reviews) == 0
        assert shell.ran == []

    run(main())


def test_a_line_that_leaves_a_quote_open_is_decided_with_the_next() -> None:
    """``echo 'x`` Enter ``'; rm y`` runs ``rm y``: the lines are decided as one."""

    async def main() -> None:
        shell = Shell()
        await shell.type("echo 'x\r")
        await shell.type("'; rm victim\r")
        assert shell.decided == [("reject", "echo 'x\n'; rm victim")]
        assert "rm victim" not in " ".join(shell.ran)

    run(main())


class Replay:
    """A gate fed a recorded session's bytes at their times (no shell: the recording
    holds its echo); what it sent, decided and asked for review."""

    def __init__(self, columns: int) -> None:
        self.sent = bytearray()
        self.decided: list[tuple[str, str]] = []
        self.asked: list[str] = []
        self.gate = LineGate(
            (columns, 24),
            decide=lambda line: POLICY.decide("alice", "t1", line),
            send=self.sent.extend,
            tell=lambda _text: None,
            hold=lambda _on: None,
            decided=lambda d, line: self.decided.append((d.action if d else "?", line)),
            review=self._review,
            reviewed=lambda *_: None,
        )

    def _review(self, _decision: Decision, line: str, _done: Callable[[Verdict], None]) -> None:
        self.asked.append(line)

    async def play(self, steps: list[tuple[float, str, bytes]]) -> None:
        """``(when, "out" | "in" | "key", bytes)``: a key is echoed by the terminal."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for at, kind, data in steps:
            await asyncio.sleep(max(0.0, start + at - loop.time()))
            if kind == "out":
                self.gate.output(data)
            else:
                self.gate.input(data)
                if kind == "key":
                    await asyncio.sleep(0.002)
                    self.gate.output(data)

    async def until(self, done: Callable[[], bool]) -> None:
        for _ in range(100):  # an Enter whose echo the gate missed waits up to 2 s
            await asyncio.sleep(0.05)
            if done():
                return


def test_a_continuation_misread_does_not_let_a_held_line_run() -> None:
    """Found in a full run: keys typed ahead of a new shell's prompt (``exec bash`` then
    ``PS1='READY> '`` at once) were echoed by the terminal before bash drew its prompt,
    and the row read ``PS1='READY> 'bash-5.2# PS1='READY> '``; its likeliest reading,
    after the last prompt-like ``> ``, is ``'``, a quote left open. The next line, to be
    held for review, was taken for the rest of that quote and its Enter sent. A review
    binds on every reading the Enter runs: that line read alone is one."""

    async def main() -> None:
        replay = Replay(80)
        await replay.play(
            [  # as recorded: when (s), what
                (0.0, "out", b"\x1b[?2004hroot@vm:~# "),
                (0.087, "in", b"exec bash --norc --noprofile\n"),
                (0.105, "out", b"exec bash --norc --noprofile"),
                (0.137, "in", b"PS1='READY> '\n"),
                (0.138, "out", b"\r\n\x1b[?2004l\r"),
                (0.138, "out", b"PS1='READY> '"),
                (0.141, "out", b"\x1b[?2004h"),
                (0.180, "out", b"bash-5.2# "),
                (0.180, "out", b"PS1='READY> '"),
                (0.180, "out", b"\r\n"),
                (0.180, "out", b"\x1b[?2004l\r"),
                (0.180, "out", b"\x1b[?2004h"),
                (0.180, "out", b"READY> "),
                (0.231, "in", b"reboot now\n"),
                (0.250, "out", b"reboot now"),
            ]
        )
        await replay.until(lambda: bool(replay.asked) or replay.sent.endswith(b"reboot now\n"))
        assert replay.asked == ["reboot now"]
        assert ("review", "reboot now") in replay.decided
        assert not replay.sent.endswith(b"reboot now\n")  # its Enter held for the auditor
        replay.gate.close()

    run(main())


def test_keys_typed_before_the_shell_started_are_read_as_typed() -> None:
    """Found in a full run: ``exec dash`` and the lines after it typed at once; the first
    keys of ``rm FILE`` were echoed by the terminal driver before bash even read ``exec
    dash``, bash then redrew its line over them, and the screen showed only ``mp/...``
    at dash's prompt. dash reads every key typed: the line as typed is decided too."""

    async def main() -> None:
        replay = Replay(200)
        await replay.play(
            [  # as recorded: when (s), what
                (0.0, "out", b"This session is recorded and may be watched.\r\n"),
                (0.001, "in", b"exec dash\nPS1='READY> '\n"),
                (0.231, "out", b"exec dash"),
                (0.269, "out", b"\r\n"),
                (0.283, "out", b"PS1='READY> '"),
                (0.323, "out", b"\r\n"),
                *[(0.35 + 0.06 * n, "key", bytes([key])) for n, key in enumerate(b"rm /t")],
                (0.615, "out", b"\x1b[?2004hroot@vm:~# exec dash\r\n\x1b[?2004l\r"),
                (0.616, "out", b"# "),
                (0.617, "out", b"READY> "),
                *[(0.675 + 0.03 * n, "key", bytes([key])) for n, key in enumerate(b"mp/victim")],
                (1.05, "in", b"\r"),
            ]
        )
        await replay.until(lambda: bool(replay.decided))
        assert [action for action, _line in replay.decided] == ["reject"]
        assert replay.decided[0][1].endswith("mp/victim")  # the screen's line, in the message
        assert replay.sent.endswith(b"\x03")  # dropped with a Ctrl-C, its Enter not sent
        replay.gate.close()

    run(main())


def test_a_shell_command_on_vims_command_line_is_decided() -> None:
    """``:!rm FILE`` in vim hands ``rm FILE`` to a shell at the Enter: decided as a line
    typed at a prompt is (and dropped with a Ctrl-C, which cancels vim's command line);
    other keys of the program, an Enter in its text included, pass at once."""

    async def main() -> None:
        replay = Replay(80)
        await replay.play(
            [
                (0.0, "out", b"\x1b[?1049h\x1b[H\x1b[2J~\r\n~\x1b[24;1H"),  # vim's screen
                *[(0.01 + 0.01 * n, "key", bytes([key])) for n, key in enumerate(b":!rm x")],
                (0.1, "in", b"\r"),
            ]
        )
        await replay.until(lambda: bool(replay.decided))
        assert replay.decided == [("reject", "rm x")]
        assert replay.sent.endswith(b"\x03")
        await replay.play(
            [
                (0.0, "out", b"\x1b[1;1H"),  # back in the text
                *[(0.01 + 0.01 * n, "key", bytes([key])) for n, key in enumerate(b"irm y")],
                (0.1, "in", b"\r"),
            ]
        )
        assert replay.sent.endswith(b"irm y\r")  # a newline in the text: not held
        assert len(replay.decided) == 1
        replay.gate.close()

    run(main())


def test_a_line_is_decided_as_the_sessions_aliases_make_it_too() -> None:
    """``alias ll='rm -rf'`` typed in the session, then ``ll x``: what runs is ``rm -rf
    x``, rejected as if typed; after ``unalias ll`` the same line is only itself."""

    async def main() -> None:
        shell = Shell()
        await shell.type("alias ll='rm -rf'\r")
        await shell.type("ll x\r")
        assert shell.decided == [("reject", "ll x")]
        assert "ll x" not in shell.ran
        await shell.type("unalias ll\r")
        await shell.type("ll y\r")
        assert shell.ran[-1] == "ll y"
        shell.gate.close()

    run(main())
