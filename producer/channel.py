"""What every relayed channel shares: flow control, its recording's end, its host.

A relay (a session channel, ``producer/relay.py``, or a forwarded TCP
connection, ``producer/forward.py``) has an operator side and a target
side. Reading from a side pauses while any reason holds it: the other
side's window is full, the operator's socket is full, the spool has no
room, the target's channel is still opening. A relay needs a few things of
the operator connection it belongs to; :class:`ChannelHost` names exactly
those (as asyncssh's channels depend on a narrow session interface), so
relays never import the connection.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from typing import ClassVar, Literal, Protocol

from asyncssh.channel import SSHChannel

from producer.admission import Verdict
from producer.moderation import Hooks, Moderated
from producer.policy import Target
from producer.recorder import Recorder
from producer.reviews import Held, Review
from producer.reviews import Verdict as ReviewVerdict
from producer.upstream import Upstream, describe_error
from sshtrail.commandpolicy import Decision

log = logging.getLogger(__name__)

Side = Literal["operator", "target"]
#: Why reading a side is paused: the other side's window is full, the operator's socket
#: is full, the target's channel is still opening, the spool has no room, the chunk
#: writer is far behind, an Enter waits for the command policy's decision, a moderated
#: session has fewer moderators present than it needs.
HoldReason = Literal[
    "window", "client socket", "opening", "spool", "recording", "policy", "moderation"
]


class ChannelHost(Protocol):
    """What a relay needs from the operator connection that opened it."""

    @property
    def upstream(self) -> Upstream:
        """This connection's way to its target (one SSH connection, opened on first use)."""
        ...

    def describe(self) -> str:
        """``client operator:target``, for log lines."""
        ...

    def target(self) -> Target:
        """The target this login may use; :class:`~producer.policy.Refused` says why not."""
        ...

    def start_recording(self, term: str, size: tuple[int, int]) -> tuple[Verdict, Recorder | None]:
        """The admission verdict for a new session's recording, and its recorder: one
        for a session admitted or refused (a refusal is recorded too), none for one
        let in unrecorded (that is recorded on its own)."""
        ...

    def channel_closed(self, relay: Relay) -> None:
        """The relay has ended: it no longer counts against any limit."""
        ...

    def refused(self, kind: str) -> None:
        """A session was refused, of this ``kind`` (counted in the gateway's metrics)."""
        ...

    def checks_commands(self, target: Target) -> bool:
        """Whether the command policy has a rule but accept that may apply on ``target``
        (a terminal shell there has its Enters held and decided)."""
        ...

    def decide_command(self, target: Target, line: str) -> Decision | None:
        """The command policy's decision on ``line`` run on ``target`` by this login's
        operator; None when no rules can be read (refuse)."""
        ...

    def moderate(self, target: Target, session: str, hooks: Hooks) -> Moderated | None:
        """The moderation of a new session to ``target`` when a ``[[moderation]]`` table
        covers it (it then waits for moderators), else None; :class:`~producer.policy.
        Refused` when it is covered but cannot be moderated here."""
        ...

    async def moderated(self, moderated: Moderated) -> str | None:
        """Wait for enough moderators; None then, else why the session is refused."""
        ...

    def moderation_ended(self, moderated: Moderated, reason: str) -> None:
        """The moderated session is over."""
        ...

    def ask_review(self, held: Held, done: Callable[[ReviewVerdict], None]) -> Review | None:
        """Hold ``held`` for an auditor's approval; ``done`` is called once with the
        verdict (at once, ``unavailable``, when the gateway cannot ask: then None)."""
        ...


class Relay(abc.ABC):
    """The operator's side of a relay, and the state every kind shares."""

    #: The end reason while nothing else happened: the operator closed it.
    CLIENT_CLOSED: ClassVar[str]

    def __init__(self, host: ChannelHost, recorder: Recorder | None = None) -> None:
        self._host = host
        self.recorder = recorder
        self._held: dict[Side, set[HoldReason]] = {}
        self._end_reason = self.CLIENT_CLOSED
        self.last_activity = asyncio.get_running_loop().time()

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

    def touched(self) -> None:
        """Traffic either way: the session is not idle."""
        self.last_activity = asyncio.get_running_loop().time()

    def _ended(self, exc: Exception | None) -> None:
        """The operator's side is gone (its target closed already): end the recording."""
        if exc is not None and self._end_reason == self.CLIENT_CLOSED:
            self._end_reason = f"connection lost: {describe_error(exc)}"
        if self.recorder is not None:
            self.recorder.close(self._end_reason)
        log.info(
            "%s: session %s ended: %s", self._host.describe(), self.session_id, self._end_reason
        )
        self._host.channel_closed(self)

    # -- flow control ---------------------------------------------------------------

    def pause_writing(self) -> None:
        """The operator's window is full: stop reading from the target."""
        self.hold("target", "window")

    def resume_writing(self) -> None:
        self.release("target", "window")

    def hold(self, side: Side, reason: HoldReason) -> None:
        """Stop reading from ``side`` for ``reason``."""
        reasons = self._held.setdefault(side, set())
        if not reasons:
            self._reader(side, pause=True)
        reasons.add(reason)

    def release(self, side: Side, reason: HoldReason) -> None:
        reasons = self._held.get(side)
        if not reasons or reason not in reasons:
            return
        reasons.discard(reason)
        if not reasons:
            del self._held[side]
            self._reader(side, pause=False)

    def held(self, side: Side) -> bool:
        return side in self._held

    def _reader(self, side: Side, pause: bool) -> None:
        chan = self.channel(side)
        if chan is not None:
            if pause:
                chan.pause_reading()
            else:
                chan.resume_reading()


class TargetSide:
    """The target's side of a relay: a full window there pauses the operator's side."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def pause_writing(self) -> None:
        """The target's window is full: stop reading from the operator."""
        self._relay.hold("operator", "window")

    def resume_writing(self) -> None:
        self._relay.release("operator", "window")

    def connection_lost(self, exc: Exception | None) -> None:
        """The target closed the channel (after its exit status, if it sent one)."""
        self._relay.target_closed(exc)
