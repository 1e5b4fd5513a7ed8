"""One proxied session channel: the operator's side, the target's side, the recording.

asyncssh calls the methods of :class:`OperatorChannel` as the operator's
client sends requests and data, and those of :class:`TargetChannel` as the
target answers. Each callback forwards, hands a copy to the
:class:`~producer.recorder.Recorder`, and returns; nothing here blocks.
Flow control is passed through both ways (``producer/channel.py``).

Before anything reaches the target, what the operator asked for is bounded
and recorded: a terminal larger than the gateway allows is cut down (the
requested and granted sizes are recorded), and every environment variable
the client sent is recorded -- its value unless the name is secret -- but
only those the target's ``accept_env`` names are passed on. The command policy
decides an exec request or subsystem as it is requested, and a terminal shell's lines
at each Enter (``producer/linegate.py``).

Why one module of about 500 lines: one channel's life -- its requests,
opening the target, the data both ways, refusals, policy, its end -- is one object
whose callbacks asyncssh calls in an order only the channel knows; the policy's
decisions, the line gate and moderation live in their own modules, this holds where
they are called.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Callable
from typing import Literal

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.misc import TermModes, TermSize

from producer.admission import Refuse
from producer.channel import ChannelHost, Relay, Side, TargetSide
from producer.commandcheck import request_outcome
from producer.linegate import LineGate
from producer.moderation import Hooks, Moderated
from producer.policy import Refused, Target
from producer.reviews import Held, Review, Verdict
from producer.upstream import describe_error
from sshtrail.commandpolicy import Decision
from sshtrail.settings import GatewaySettings

log = logging.getLogger(__name__)

Mode = Literal["shell", "exec", "subsystem"]


def matches(name: str, patterns: list[str]) -> bool:
    """Whether ``name`` matches one of the shell-style ``patterns`` (case-insensitive)."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in patterns)


class TargetChannel(TargetSide, asyncssh.SSHClientSession[bytes]):
    """The target's side of one session channel."""

    _relay: OperatorChannel

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Called for each piece of output from the target."""
        self._relay.from_target(data, datatype)

    def eof_received(self) -> bool:
        """The target will send no more output; pass the EOF on, keep the channel."""
        self._relay.chan.write_eof()
        return True  # half-open: the exit status is still to come

    def exit_status_received(self, status: int) -> None:
        self._relay.exited(status=status)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._relay.exited(signal=signal, core_dumped=core_dumped, message=msg, lang=lang)


class OperatorChannel(Relay, asyncssh.SSHServerSession[bytes]):
    """The operator's side of one session channel, and its recording."""

    CLIENT_CLOSED = "client closed the channel"

    def __init__(self, host: ChannelHost, gw: GatewaySettings) -> None:
        super().__init__(host)
        self._gw = gw
        self.chan: asyncssh.SSHServerChannel[bytes]
        self._mode: Mode = "shell"
        self._command = b""
        self._term: str | None = None
        self._size = (0, 0, 0, 0)
        self._requested_size = (0, 0)
        self._modes: TermModes = {}
        self._target: asyncssh.SSHClientChannel[bytes] | None = None
        self._early: list[tuple[bytes, asyncssh.DataType]] = []
        self._eof_early = False
        self._opening: asyncio.Task[None] | None = None
        self._exit: tuple[int | None, str | None, bool, str, str] | None = None
        self._refusal: Refused | None = None
        self._gone = False
        self._refused = False  # the target refused what the operator asked for
        self._clamped_noted = False
        #: A terminal shell's Enter held for the command policy (``producer/linegate.py``).
        self._gate: LineGate | None = None
        #: An exec request or subsystem the command policy holds for review.
        self._exec_review: Decision | None = None
        self._review: Review | None = None
        #: A session a ``[[moderation]]`` table covers (``producer/moderation.py``).
        self._moderated: Moderated | None = None

    # -- requests, before the session starts --------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: TermSize, term_modes: TermModes) -> bool:
        """A PTY: requested from the target with the same values, its size bounded."""
        self._term, self._modes = term_type, term_modes
        self._requested_size = (term_size[0], term_size[1])
        self._size = self._bounded(*term_size)
        return True

    def shell_requested(self) -> bool:
        self._mode = "shell"
        return True

    def exec_requested(self, command: str) -> bool:
        self._mode, self._command = "exec", command.encode()
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self._mode, self._command = "subsystem", subsystem.encode()
        return True

    def session_started(self) -> None:
        """The request is complete: start recording, open the target's channel.

        Input that arrives before the target's channel is open is recorded and
        held; reading pauses so that holding it stays small.
        """
        cols, rows = self._size[:2]
        verdict, self.recorder = self._host.start_recording(self._term or "", (cols, rows))
        target: Target | None = None
        try:
            target = self._host.target()
        except Refused as refused:
            self._refusal = refused
        if isinstance(verdict, Refuse):
            self._refusal = Refused(verdict.message, verdict.kind, verdict.detail)
        warning = self._command_policy(target) if self._refusal is None else None
        if self.recorder is not None:
            self.recorder.request(self._mode, self._command)
            if (cols, rows) != self._requested_size and self._term is not None:
                self._note_clamped(*self._requested_size)
        if self._refusal is None:
            self._banner()  # first on the screen and in the record, before anything typed
        if warning is not None:
            self._warn(warning)
        if self._refusal is None and target is not None:
            self._gate_shell(target)
            self._moderate(target)
        env = self._environment(target)
        # The command itself stays out of the log: it may hold secrets.
        log.info(
            "%s: session %s started (%s%s)",
            self._host.describe(),
            self.session_id,
            self._mode,
            ", pty" if self._term is not None else "",
        )
        self.hold("operator", "opening")
        self._opening = asyncio.get_running_loop().create_task(self._open(target, env))

    def _command_policy(self, target: Target | None) -> str | None:
        """Check an exec request's command or a subsystem's name against the command
        policy (docs/policy.md): a rejection becomes this relay's refusal; a warning is
        returned, to be shown and recorded. A shell's lines go through :meth:`_gate_shell`."""
        if target is None or self._mode not in ("exec", "subsystem"):
            return None
        line = self._command.decode("utf-8", "replace")
        decision = self._host.decide_command(target, line)
        if decision is not None and decision.rule is not None and decision.action != "accept":
            log.info("%s: %s", self._host.describe(), decision.describe())
            if self.recorder is not None:  # as a shell's decisions are (linegate)
                self.recorder.notice(
                    "policy", f"{decision.action} by rule {decision.rule.name}: {line}"
                )
        if decision is not None and decision.action == "review":
            self._exec_review = decision  # asked once the session is recorded (_open)
            return None
        outcome = request_outcome(decision)
        if isinstance(outcome, Refused):
            self._refusal = outcome
            return None
        return outcome

    def _gate_shell(self, target: Target) -> None:
        """A session with a terminal (a shell, or ``ssh -t host bash``) to a target the
        command policy covers: its Enters go through a :class:`LineGate`, which reads the
        line on screen and decides it."""
        if self._mode == "subsystem" or self._term is None:
            return  # a shell, or a command given a terminal (ssh -t host bash): gated
        if not self._host.checks_commands(target):
            return
        self._gate = LineGate(
            self._size[:2],
            decide=lambda line: self._host.decide_command(target, line),
            send=lambda data: self._to_target(data, None),
            tell=self._tell,
            hold=lambda on: (self.hold if on else self.release)("operator", "policy"),
            decided=self._policy_decided,
            review=lambda decision, line, done: self._ask_review(target, decision, line, done),
            reviewed=self._policy_reviewed,
        )

    def _moderate(self, target: Target) -> None:
        """A session a ``[[moderation]]`` table covers waits for its moderators (in
        :meth:`_open`), then pauses or ends while they are fewer."""
        hooks = Hooks(
            tell=self._moderation_notice,
            note=lambda text: self.recorder.notice("moderation", text) if self.recorder else None,
            hold=lambda on: (self.hold if on else self.release)("operator", "moderation"),
            end=self.close,
        )
        try:
            self._moderated = self._host.moderate(target, self.session_id, hooks)
        except Refused as refused:
            self._refusal = refused

    def _moderation_notice(self, text: str) -> None:
        """What moderation tells the operator: on a terminal on a line of its own, else
        on stderr (it would mix into a command's output)."""
        if self._term is None:
            self._warn(text)
        else:
            self._tell(f"\r\nsshtrail: {text}\r\n")

    def _ask_review(
        self, target: Target, decision: Decision, line: str, done: Callable[[Verdict], None]
    ) -> Review | None:
        rule = decision.rule.name if decision.rule is not None else "?"
        held = Held(str(self.session_id), "", target.name, rule, decision.message, line)
        self._review = self._host.ask_review(held, done)
        return self._review

    def _policy_reviewed(self, decision: Decision, line: str, verdict: Verdict) -> None:
        """The end of a review, in the log and in the record: ``review by rule R approved
        by A after 3.0 s: REASON: LINE``, or ``reject by rule R after review denied ...``."""
        self._review = None
        rule = decision.rule.name if decision.rule is not None else "?"
        what = (
            f"review by rule {rule} {verdict.outcome}"
            if verdict.approved
            else f"reject by rule {rule} after review {verdict.outcome}"
        )
        log.info("%s: session %s: a command %s", self._host.describe(), self.session_id, what)
        if self.recorder is not None:
            self.recorder.notice("policy", f"{what}{verdict.detail(quoted=True)}: {line}")
        if not verdict.approved:
            self._host.refused("command rejected")

    def _tell(self, text: str) -> None:
        """The gateway's words on the operator's terminal, recorded as its output."""
        notice = text.encode()
        with contextlib.suppress(OSError):
            self.chan.write(notice)
        if self.recorder is not None:
            self.recorder.said(notice)

    def _policy_decided(self, decision: Decision | None, line: str) -> None:
        """A command the policy rejected or warned about, in the log (without the
        command: it may hold secrets) and in the record (with it: it was typed there)."""
        if decision is None or decision.rule is None:
            what = "rejected: the command policy cannot be read"
        else:
            what = f"{decision.action} by rule {decision.rule.name}"
        log.info("%s: session %s: a command %s", self._host.describe(), self.session_id, what)
        if self.recorder is not None:
            self.recorder.notice("policy", f"{what}: {line}")
        if decision is None or decision.action == "reject":
            self._host.refused("command rejected")

    async def _exec_reviewed(self, target: Target, decision: Decision) -> Refused | None:
        """Hold an exec request or subsystem for review; a refusal unless approved. The
        operator is told on stderr while it waits (closing the client cancels it)."""
        line = self._command.decode("utf-8", "replace")  # held: recorded by _command_policy
        answered: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()

        def done(verdict: Verdict) -> None:
            if not answered.done():
                answered.set_result(verdict)

        review = self._ask_review(target, decision, line, done)
        if review is not None:
            self._warn(
                f"{decision.message}\r\nsshtrail: waiting for approval "
                f"(rule {review.request.rule}, request {review.id[:8]})..."
            )
        verdict = await answered
        self._policy_reviewed(decision, line, verdict)
        if verdict.approved:
            self._warn(verdict.describe())
            return None
        return Refused(
            f"{decision.message}: not run: review {verdict.describe()}",
            "command rejected",
            f" by rule {review.request.rule if review else '?'} after review",
            exit_status=126,
        )

    def _warn(self, warning: str) -> None:
        """A policy warning, on the operator's stderr before the command's output, and
        in the record."""
        notice = f"sshtrail: {warning}\r\n".encode()
        with contextlib.suppress(OSError):
            self.chan.write_stderr(notice)
        if self.recorder is not None:
            self.recorder.said(notice, stderr=True)

    def _environment(self, target: Target | None) -> dict[bytes, bytes]:
        """Record every variable the client sent; return those the target accepts."""
        accepted: dict[bytes, bytes] = {}
        allowed = target.settings.accept_env if target is not None else []
        for raw_name, raw_value in self.chan.get_environment_bytes().items():
            name, value = bytes(raw_name), bytes(raw_value)
            text = name.decode("utf-8", "replace")
            ok = matches(text, allowed)
            if ok:
                accepted[name] = value
            if self.recorder is not None:
                secret = matches(text, self._gw.secret_env)
                self.recorder.env(name, None if secret else value, ok)
        return accepted

    async def _open(self, target: Target | None, env: dict[bytes, bytes]) -> None:
        if self._refusal is None and self._moderated is not None:
            refusal = await self._host.moderated(self._moderated)
            if self._gone:
                return
            if refusal is not None:
                self._refusal = Refused(refusal, "not moderated", f": {refusal}")
        if self._refusal is None and target is not None and self._exec_review is not None:
            self._refusal = await self._exec_reviewed(target, self._exec_review)
            if self._gone:
                return
        if self._refusal is not None or target is None:
            self._refuse(self._refusal or Refused("no target", "no target"))
            return
        try:
            chan = await self._host.upstream.open_session(
                target,
                lambda: TargetChannel(self),
                command=self._command.decode(errors="replace") if self._mode == "exec" else None,
                subsystem=self._command.decode(errors="replace")
                if self._mode == "subsystem"
                else None,
                env=env,
                term=self._term,
                size=self._size,
                modes=self._modes,
            )
        except Refused as refused:
            self._refuse(refused)
            return
        if self._gone:  # the operator left while the target's channel was opening
            chan.close()
            return
        self._target = chan
        for data, datatype in self._early:
            chan.write(data, datatype)
        if self._eof_early:
            chan.write_eof()
        self._early.clear()
        if "target" in self._held:  # a hold placed before the target channel existed
            chan.pause_reading()
        self.release("operator", "opening")

    def _banner(self) -> None:
        """The recording notice, on a terminal only (it would mix into other data),
        recorded as output: a replay shows what the operator was told."""
        if self._term is None or not self._gw.banner:
            return
        text = "\r\n".join(self._gw.banner.splitlines())
        notice = f"{text}\r\n".encode()
        with contextlib.suppress(OSError):
            self.chan.write(notice)
        if self.recorder is not None:
            self.recorder.said(notice)

    def _refuse(self, refused: Refused) -> None:
        self._refused = True
        self._end_reason = refused.reason
        self._host.refused(refused.kind)
        with contextlib.suppress(OSError):
            self.chan.write_stderr(f"sshtrail: {refused.message}\r\n".encode())
        self.chan.exit(refused.exit_status)

    def _bounded(self, cols: int, rows: int, width: int, height: int) -> tuple[int, int, int, int]:
        gw = self._gw
        return min(cols, gw.terminal_max_columns), min(rows, gw.terminal_max_rows), width, height

    def _note_clamped(self, cols: int, rows: int) -> None:
        if self.recorder is not None and not self._clamped_noted:
            self._clamped_noted = True
            granted = f"{min(cols, self._gw.terminal_max_columns)}x"
            granted += f"{min(rows, self._gw.terminal_max_rows)}"
            self.recorder.notice(
                "terminal-size", f"terminal size {cols}x{rows} requested, {granted} granted"
            )

    # -- data and requests while running -------------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Called for each piece of input from the operator."""
        self.touched()
        if self.recorder is not None:
            self.recorder.input(data)
        if self._gate is not None and datatype is None:
            self._gate.input(data)  # sends it on, an Enter once decided
        else:
            self._to_target(data, datatype)

    def _to_target(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._target is None:
            self._early.append((data, datatype))
        else:
            with contextlib.suppress(OSError):  # the target's channel is closing
                self._target.write(data, datatype)

    def eof_received(self) -> bool:
        if self._target is None:
            self._eof_early = True
        else:
            self._target.write_eof()
        return True  # half-open: output may still come

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        size = self._bounded(width, height, pixwidth, pixheight)
        if size[:2] != (width, height):
            self._note_clamped(width, height)
        if self.recorder is not None:
            self.recorder.resize(*size)
        if self._gate is not None:
            self._gate.resize(*size[:2])
        if self._target is not None:
            self._target.change_terminal_size(*size)
        self._size = size

    def signal_received(self, signal: str) -> None:
        """A signal the operator's client sent (``ssh`` sends none itself; other
        clients do): recorded as a ``signal`` notice, then passed on."""
        if self.recorder is not None:
            self.recorder.notice("signal", signal)
        if self._target is not None:
            self._target.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self._target is not None:
            self._target.send_break(msec)
        return True

    def channel(self, side: Side) -> SSHChannel[bytes] | None:
        return self.chan if side == "operator" else self._target

    # -- from the target -----------------------------------------------------

    def from_target(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.touched()
        if self.recorder is not None:
            self.recorder.output(data, stderr=datatype == asyncssh.EXTENDED_DATA_STDERR)
        if self._gate is not None:
            self._gate.output(data)
        # The operator's channel may be closing while the target still talks;
        # an exception here would tear down the whole target connection.
        with contextlib.suppress(OSError):
            self.chan.write(data, datatype)

    def exited(
        self,
        status: int | None = None,
        signal: str | None = None,
        core_dumped: bool = False,
        message: str = "",
        lang: str = "",
    ) -> None:
        """The target's exit status or signal. asyncssh reports it at once, while
        output may still wait in the paused channel; it is passed on when the
        target's channel closes, after the last byte of output."""
        self._exit = (status, signal, core_dumped, message, lang)

    def target_closed(self, exc: Exception | None) -> None:
        self._target = None
        if self._refused:  # the target refused the request, then closed: that is the end
            return
        if self._exit is None:
            self._end_reason = "target closed the channel" + (
                f": {describe_error(exc)}" if exc else ""
            )
            self.chan.close()
            return
        status, signal, core_dumped, message, lang = self._exit
        if self.recorder is not None:
            self.recorder.exit(status, signal, core_dumped, message)
        self._end_reason = f"exit status {status}" if signal is None else f"signal {signal}"
        if signal is None:
            self.chan.exit(status if status is not None else 255)
        else:
            self.chan.exit_with_signal(signal, core_dumped, message, lang)

    # -- the end ---------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Close from the gateway's side (idle timeout, shutdown)."""
        self._end_reason = reason
        with contextlib.suppress(OSError):  # the operator may be gone already
            self.chan.write_stderr(f"\r\nsshtrail: {reason}\r\n".encode())
        self.chan.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """The operator's channel is gone: end the target's and the recording."""
        self._gone = True
        if self._gate is not None:
            self._gate.close()
        if self._review is not None:
            self._review.cancel("ended", "the session ended")
        if self._moderated is not None:
            self._host.moderation_ended(self._moderated, self._end_reason)
        if self._target is not None:
            self._target.close()
            self._target = None
        self._ended(exc)
