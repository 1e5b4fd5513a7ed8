"""A forwarded TCP connection (``ssh -L``), relayed through the target and recorded.

Only where the target allows it (``targets[].allow_forwarding``). The gateway
opens the connection from the target's side, over its own SSH connection to
the target, so the operator reaches exactly what the target reaches. Each
forwarded connection is a recording of its own: ``exec`` mode
``direct-tcpip`` with the destination, the bytes towards the destination as
input, the bytes back as output, and the end with its reason.
"""

from __future__ import annotations

import contextlib
import logging

import asyncssh
from asyncssh.channel import SSHChannel

from producer.channel import ChannelHost, Relay, Side, TargetSide
from producer.recorder import Recorder
from producer.upstream import describe_error

log = logging.getLogger(__name__)


def destination(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _TargetEnd(TargetSide, asyncssh.SSHTCPSession[bytes]):
    """The target's side of a forwarded connection."""

    _relay: Forward

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._relay.from_target(data)

    def eof_received(self) -> bool:
        self._relay.eof_from_target()
        return True  # the other direction may still be sending


class Forward(Relay, asyncssh.SSHTCPSession[bytes]):
    """The operator's side of a forwarded connection, and its recording."""

    CLIENT_CLOSED = "client closed the connection"

    def __init__(self, host: ChannelHost, recorder: Recorder | None, where: str) -> None:
        super().__init__(host, recorder)
        self.where = where
        #: The operator's channel, from connection_made on; until then what the
        #: destination sends, its EOF, a hold or a close wait for it.
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self.target: asyncssh.SSHTCPChannel[bytes] | None = None
        self.target_end = _TargetEnd(self)
        self._early: list[bytes] = []  # from the destination before our channel opened
        self._closing = False  # asked to close before our channel opened
        self._eof_early = False  # the destination's EOF came before it

    def channel(self, side: Side) -> SSHChannel[bytes] | None:
        return self.chan if side == "operator" else self.target

    def opened(self, target: asyncssh.SSHTCPChannel[bytes]) -> None:
        """The destination answered; nothing more is read from it until ours is open."""
        self.target = target
        self.hold("target", "opening")

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        if "operator" in self._held:
            chan.pause_reading()
        for data in self._early:
            chan.write(data)
        self._early.clear()
        if self._eof_early:
            chan.write_eof()
        self.release("target", "opening")
        if self._closing:
            chan.close()
        log.info(
            "%s: session %s forwards to %s",
            self._host.describe(),
            self.session_id,
            self.where,
        )

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        """Bytes from the operator towards the destination."""
        self.touched()
        if self.recorder is not None:
            self.recorder.input(data)
        if self.target is not None:
            with contextlib.suppress(OSError):  # the destination is closing
                self.target.write(data)

    def from_target(self, data: bytes) -> None:
        """Bytes from the destination back to the operator."""
        self.touched()
        if self.recorder is not None:
            self.recorder.output(data)
        if self.chan is None:
            self._early.append(data)
            return
        with contextlib.suppress(OSError):
            self.chan.write(data)

    def eof_from_target(self) -> None:
        if self.chan is None:
            self._eof_early = True
            return
        with contextlib.suppress(OSError):  # the operator's channel is closing
            self.chan.write_eof()

    def eof_received(self) -> bool:
        if self.target is not None:
            self.target.write_eof()
        return True

    def target_closed(self, exc: Exception | None) -> None:
        self.target = None
        self._end_reason = "destination closed the connection" + (
            f": {describe_error(exc)}" if exc else ""
        )
        self._close_operator()

    def close(self, reason: str) -> None:
        self._end_reason = reason
        self._close_operator()

    def _close_operator(self) -> None:
        if self.chan is None:
            self._closing = True  # closed as soon as it opens
        else:
            self.chan.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.target is not None:
            self.target.close()
            self.target = None
        self._ended(exc)
