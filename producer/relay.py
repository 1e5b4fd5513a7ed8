"""One proxied session channel: the operator's side, the target's side, the recording.

asyncssh calls the methods of :class:`OperatorChannel` as the operator's
client sends requests and data, and those of :class:`TargetChannel` as the
target answers. Each callback forwards, hands a copy to the
:class:`~producer.recorder.Recorder`, and returns; nothing here blocks.
Flow control is passed through both ways: a full window on one side pauses
reading on the other, so no buffer grows without bound.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Literal

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.misc import TermModes, TermSize

from producer.policy import Refused
from producer.recorder import Recorder

if TYPE_CHECKING:
    from producer.gateway import Connection

log = logging.getLogger(__name__)

Mode = Literal["shell", "exec", "subsystem"]
Side = Literal["operator", "target"]


class Held(abc.ABC):
    """The operator's side of a relay (a session channel or a forwarded connection).

    Reading from either side is paused while any reason holds it: the other
    side's window is full, the operator's socket is full, the spool has no
    room, the target's channel is still opening.
    """

    _held: dict[Side, set[str]]
    _connection: Connection
    _end_reason: str
    recorder: Recorder | None
    last_activity: float
    #: The end reason while nothing else happened: the operator closed it.
    CLIENT_CLOSED: str

    @abc.abstractmethod
    def channel(self, side: Side) -> SSHChannel[bytes] | None:
        """The channel reading from ``side`` comes from, if it is open yet."""

    @abc.abstractmethod
    def close(self, reason: str) -> None:
        """Close from the gateway's side (idle timeout, shutdown)."""

    @abc.abstractmethod
    def target_closed(self, exc: Exception | None) -> None:
        """The target's side is gone."""

    @property
    def session_id(self) -> str:
        return str(self.recorder.session_id) if self.recorder is not None else "(unrecorded)"

    def _ended(self, exc: Exception | None) -> None:
        """The operator's side is gone (its target closed already): end the recording."""
        if exc is not None and self._end_reason == self.CLIENT_CLOSED:
            self._end_reason = f"connection lost: {describe_error(exc)}"
        if self.recorder is not None:
            self.recorder.close(self._end_reason)
        log.info(
            "%s: session %s ended: %s",
            self._connection.describe(),
            self.session_id,
            self._end_reason,
        )
        self._connection.channel_closed(self)

    def pause_writing(self) -> None:
        """The operator's window is full: stop reading from the target."""
        self.hold("target", "window")

    def resume_writing(self) -> None:
        self.release("target", "window")

    def hold(self, side: Side, reason: str) -> None:
        """Stop reading from ``side`` for ``reason``."""
        reasons = self._held.setdefault(side, set())
        if not reasons:
            self._reader(side, pause=True)
        reasons.add(reason)

    def release(self, side: Side, reason: str) -> None:
        reasons = self._held.get(side)
        if not reasons or reason not in reasons:
            return
        reasons.discard(reason)
        if not reasons:
            del self._held[side]
            self._reader(side, pause=False)

    def _reader(self, side: Side, pause: bool) -> None:
        chan = self.channel(side)
        if chan is not None:
            if pause:
                chan.pause_reading()
            else:
                chan.resume_reading()


class TargetSide:
    """The target's side of a relay: a full window there pauses the operator's side."""

    def __init__(self, relay: Held) -> None:
        self._relay = relay

    def pause_writing(self) -> None:
        """The target's window is full: stop reading from the operator."""
        self._relay.hold("operator", "window")

    def resume_writing(self) -> None:
        self._relay.release("operator", "window")

    def connection_lost(self, exc: Exception | None) -> None:
        """The target closed the channel (after its exit status, if it sent one)."""
        self._relay.target_closed(exc)


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


class OperatorChannel(Held, asyncssh.SSHServerSession[bytes]):
    """The operator's side of one session channel, and its recording."""

    CLIENT_CLOSED = "client closed the channel"

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.chan: asyncssh.SSHServerChannel[bytes]
        self._mode: Mode = "shell"
        self._command = b""
        self._term: str | None = None
        self._size = (0, 0, 0, 0)
        self._modes: TermModes = {}
        self._target: asyncssh.SSHClientChannel[bytes] | None = None
        self._early: list[tuple[bytes, asyncssh.DataType]] = []
        self._eof_early = False
        self.recorder: Recorder | None = None
        self._opening: asyncio.Task[None] | None = None
        self._exit: tuple[int | None, str | None, bool, str, str] | None = None
        self._held: dict[Side, set[str]] = {}
        self._spool_state = "ok"
        self._gone = False
        self._exit_sent = False
        self._end_reason = self.CLIENT_CLOSED
        self.last_activity = asyncio.get_running_loop().time()

    # -- requests, before the session starts --------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: TermSize, term_modes: TermModes) -> bool:
        """A PTY: remembered and requested from the target with the same values."""
        self._term, self._size, self._modes = term_type, term_size, term_modes
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
        self._spool_state = self._connection.spool_state()  # before our own first chunk
        self.recorder = self._connection.new_recorder(self._term or "", self._size)
        if self.recorder is not None:
            self.recorder.request(self._mode, self._command)
        # The command itself stays out of the log: it may hold secrets.
        log.info(
            "%s: session %s started (%s%s)",
            self._connection.describe(),
            self.session_id,
            self._mode,
            ", pty" if self._term is not None else "",
        )
        self.hold("operator", "opening")
        self._opening = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        connection = self._connection
        try:
            target = connection.resolve_target(self._spool_state)
            upstream = await connection.target_connection(target)
            env = self.chan.get_environment_bytes()
            chan, _ = await upstream.create_session(
                lambda: TargetChannel(self),
                command=self._command.decode() if self._mode == "exec" else None,
                subsystem=self._command.decode() if self._mode == "subsystem" else None,
                env={bytes(k): bytes(v) for k, v in env.items()} if env else None,
                request_pty=self._term is not None,
                term_type=self._term,
                term_size=self._size if self._term is not None else None,
                term_modes=self._modes,
                encoding=None,
            )
        except Refused as refused:
            self._refuse(refused)
            return
        except (OSError, asyncssh.Error) as exc:
            self._refuse(
                Refused(
                    f"cannot open a session on the target: {describe_error(exc)}",
                    f"target session failed: {describe_error(exc)}",
                )
            )
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

    def _refuse(self, refused: Refused) -> None:
        self._end_reason = refused.reason
        with contextlib.suppress(OSError):
            self.chan.write_stderr(f"sshtrail: {refused.message}\r\n".encode())
        self._exit_sent = True
        self.chan.exit(1)

    # -- data and requests while running -------------------------------------

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Called for each piece of input from the operator."""
        self.last_activity = asyncio.get_running_loop().time()
        if self.recorder is not None:
            self.recorder.input(data)
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
        if self.recorder is not None:
            self.recorder.resize(width, height, pixwidth, pixheight)
        if self._target is not None:
            self._target.change_terminal_size(width, height, pixwidth, pixheight)
        self._size = (width, height, pixwidth, pixheight)

    def signal_received(self, signal: str) -> None:
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
        self.last_activity = asyncio.get_running_loop().time()
        if self.recorder is not None:
            self.recorder.output(data, stderr=datatype == asyncssh.EXTENDED_DATA_STDERR)
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
        if self._exit is None:
            self._end_reason = "target closed the channel" + (
                f": {describe_error(exc)}" if exc else ""
            )
            self.chan.close()
            return
        status, signal, core_dumped, message, lang = self._exit
        if self.recorder is not None:
            self.recorder.exit(status, signal, core_dumped, message)
        self._exit_sent = True
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
        if self._target is not None:
            self._target.close()
            self._target = None
        self._ended(exc)


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason
    return str(exc) or type(exc).__name__
