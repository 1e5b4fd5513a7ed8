"""Moderated sessions at the gateway: a session runs only while enough moderators watch.

A ``[[moderation]]`` table of the policy file (:mod:`sshtrail.moderationpolicy`) covers
some operators and targets. A session it covers is opened with the operator, recorded,
and told it waits; the target's shell (or command) is started only once ``count`` of the
table's moderators are present. While fewer are present later, the operator's input is
held -- reading from their channel pauses, so what they type waits in the SSH window,
neither lost nor sent, and reaches the target once when a moderator is back -- or, with
``on_leave = "terminate"``, the session ends with the reason. A session nobody moderates
within ``wait_s`` is refused. Every join, leave, pause and resumption is in the recording
(``moderation`` notices) and in the gateway's log.

Presence arrives on the control topic (:class:`~sshtrail.control.Presence`, signed by a
trusted control key: the console, or ``sshtrail watch --moderate``): a join, a heartbeat
every :data:`~sshtrail.control.HEARTBEAT_S`, a leave. A moderator counts from their join
until their leave, or until :data:`~sshtrail.control.PRESENCE_TTL_S` after the last word
from them -- a closed browser tab or a killed terminal stops the heartbeats. Only the
gateway holding a session acts on presence for it. A presence signed too far from now
(:data:`~sshtrail.control.PRESENCE_FRESH_S`), or not later than the last taken from the
same moderator for the same session (a copy re-sent), is refused and logged. Those
whose name or groups the table does not list -- and the operator, in their own session
-- may watch, and are recorded as watching, but do not count.

At every change the gateway publishes a :class:`~sshtrail.control.ModerationState`
(signed by its recording key), which the console and ``sshtrail moderate`` list.
Everything here runs on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sshtrail import control
from sshtrail.moderationpolicy import Moderation

log = logging.getLogger(__name__)

#: How often presence is checked for moderators whose heartbeats stopped, in seconds.
SWEEP_S = 0.5


def _age(message: control.Presence, now_ns: int) -> float:
    """How long ago ``message`` was signed, in seconds, as far as it shortens the
    presence it gives: a heartbeat that came late (queued in a console, a slow broker)
    counts from when it was sent, not from when it arrived. Never more than what leaves
    one heartbeat's interval of presence (clocks differ), never less than nothing."""
    age = (now_ns - message.at) / 1e9
    return min(max(age, 0.0), control.PRESENCE_TTL_S - control.HEARTBEAT_S)


@dataclass(frozen=True, slots=True)
class Hooks:
    """What a moderated session's relay lets its moderation do."""

    #: Tell the operator (on their terminal, or stderr), recorded as output.
    tell: Callable[[str], None]
    #: Record a ``moderation`` notice.
    note: Callable[[str], None]
    #: Hold (True) or release (False) the operator's input.
    hold: Callable[[bool], None]
    #: End the session with the reason.
    end: Callable[[str], None]


@dataclass(slots=True, eq=False)
class Moderated:
    """One moderated session on this gateway."""

    rule: Moderation
    session: str
    operator: str
    target: str
    hooks: Hooks
    started: asyncio.Future[None]
    phase: control.ModerationPhase = "waiting"
    #: Moderators present, and the loop time each one's presence lapses at.
    present: dict[str, float] = field(default_factory=dict)
    #: Everyone recorded as watching without counting (not a moderator, or the operator).
    watching: set[str] = field(default_factory=set)
    deadline_ns: int = 0

    @property
    def needed(self) -> int:
        return self.rule.count

    def counted(self) -> str:
        names = ", ".join(sorted(self.present)) or "none"
        return f"{len(self.present)} of {self.needed} moderators present ({names})"


class ModerationDesk:
    """Every moderated session of this gateway, and the presence for them."""

    def __init__(
        self,
        gateway: str,
        send: Callable[[control.Message], str | None],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._gateway = gateway
        self._send = send
        self._clock = clock
        self._sessions: dict[str, Moderated] = {}
        #: The signing time of the last presence taken, per (session, moderator).
        self._last_at: dict[tuple[str, str], int] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._sessions)

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def open(
        self, rule: Moderation, session: str, operator: str, target: str, hooks: Hooks
    ) -> Moderated:
        """Start moderating ``session``: the operator is told it waits for moderators
        (:meth:`wait`), and the console hears it (a :class:`~sshtrail.control.
        ModerationState`)."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        moderated = Moderated(rule, session, operator, target, hooks, started)
        moderated.deadline_ns = control.now_ns() + int(rule.wait_s * 1e9)
        self._sessions[session] = moderated
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        detail = f" ({rule.message})" if rule.message else ""
        hooks.tell(
            f"this session is moderated{detail}: waiting for a moderator "
            f"({rule.count} needed, rule {rule.name}; at most {rule.wait_s:g} s)..."
        )
        hooks.note(
            f"waiting for {rule.count} moderator(s) of rule {rule.name} "
            f"(at most {rule.wait_s:g} s; on leave: {rule.on_leave})"
        )
        self._publish(moderated, "waiting for a moderator")
        log.info(
            "session %s: moderated by rule %s: waiting for %d moderator(s)",
            session,
            rule.name,
            rule.count,
        )
        return moderated

    async def wait(self, moderated: Moderated) -> str | None:
        """Wait until enough moderators are present; None then, else why the session is
        refused (nobody came within ``wait_s``, or it ended meanwhile)."""
        rule = moderated.rule
        try:
            await asyncio.wait_for(asyncio.shield(moderated.started), rule.wait_s)
        except TimeoutError:
            reason = f"no moderator joined within {rule.wait_s:g} s (rule {rule.name})"
            moderated.phase = "refused"
            moderated.hooks.note(f"refused: {reason}")
            self._publish(moderated, reason)
            self._forget(moderated)
            log.info("session %s: refused: %s", moderated.session, reason)
            return reason
        except asyncio.CancelledError:
            return "the session ended while waiting for a moderator"
        return None

    def ended(self, moderated: Moderated, reason: str) -> None:
        """The session is over (or refused): no more moderation for it."""
        if moderated.session not in self._sessions:
            return
        if not moderated.started.done():
            moderated.started.cancel()
        if moderated.phase not in ("refused", "ended"):
            moderated.phase = "ended"
            self._publish(moderated, reason)
        self._forget(moderated)

    def _forget(self, moderated: Moderated) -> None:
        self._sessions.pop(moderated.session, None)
        for key in [k for k in self._last_at if k[0] == moderated.session]:
            del self._last_at[key]

    # -- presence ---------------------------------------------------------------------

    def presence(self, message: control.Presence, where: str) -> None:
        """A presence from the control topic (its signature checked): counted if it is
        for a session here, fresh, new, and from one of the session's moderators."""
        moderated = self._sessions.get(message.session)
        if moderated is None:
            return  # another gateway's session, or one that ended
        now_ns = control.now_ns()
        name = message.moderator
        if not control.present(message, now_ns):
            log.warning(
                "refused a presence at %s: %s in session %s signed %.0f s from now "
                "(more than %d s): a copy kept and re-sent, or a clock far off",
                where,
                name,
                message.session,
                abs(now_ns - message.at) / 1e9,
                control.PRESENCE_FRESH_S,
            )
            return
        key = (message.session, name)
        last = self._last_at.get(key)
        if last is not None and message.at <= last:
            log.warning(
                "refused a presence at %s: %s in session %s signed at %d, not after the "
                "last one taken (%d): a copy re-sent",
                where,
                name,
                message.session,
                message.at,
                last,
            )
            return
        self._last_at[key] = message.at
        rule = moderated.rule
        if name == moderated.operator or not rule.may_moderate(name, message.groups):
            self._watching(moderated, message)
            return
        if message.state == "leave":
            if moderated.present.pop(name, None) is not None:
                self._left(moderated, name, "ended their moderation")
            return
        if moderated.phase in ("ended", "refused"):
            return
        joined = name not in moderated.present
        moderated.present[name] = self.now() + control.PRESENCE_TTL_S - _age(message, now_ns)
        if joined:
            moderated.hooks.note(f"moderator {name} joined (via {message.via})")
            log.info("session %s: moderator %s joined", moderated.session, name)
            self._changed(moderated, f"moderator {name} joined")

    def _watching(self, moderated: Moderated, message: control.Presence) -> None:
        name = message.moderator
        if message.state == "leave":
            if name in moderated.watching:
                moderated.watching.discard(name)
                moderated.hooks.note(f"{name} stopped watching")
            return
        if name in moderated.watching:
            return
        moderated.watching.add(name)
        why = (
            "the operator, in their own session"
            if name == moderated.operator
            else f"not a moderator of rule {moderated.rule.name}"
        )
        moderated.hooks.note(f"{name} watching (via {message.via}); does not count: {why}")
        log.info("session %s: %s watching, not counted: %s", moderated.session, name, why)

    def _left(self, moderated: Moderated, name: str, how: str) -> None:
        moderated.hooks.note(f"moderator {name} left ({how})")
        log.info("session %s: moderator %s left (%s)", moderated.session, name, how)
        self._changed(moderated, f"moderator {name} left")

    def _changed(self, moderated: Moderated, what: str) -> None:
        """Presence changed: start, pause, resume or end the session as the count says."""
        enough = len(moderated.present) >= moderated.needed
        rule = moderated.rule
        if moderated.phase == "waiting" and enough:
            moderated.phase = "running"
            moderated.hooks.note(f"started: {moderated.counted()}")
            moderated.hooks.tell(f"sshtrail: {what}; the session starts.")
            if not moderated.started.done():
                moderated.started.set_result(None)
        elif moderated.phase == "running" and not enough:
            if rule.on_leave == "terminate":
                moderated.phase = "ended"
                reason = f"{what}: {moderated.counted()} (rule {rule.name}, on_leave = terminate)"
                moderated.hooks.note(f"terminated: {reason}")
                self._publish(moderated, reason)
                moderated.hooks.end(reason)
                return
            moderated.phase = "paused"
            moderated.hooks.hold(True)
            moderated.hooks.note(f"paused: {moderated.counted()}; input held")
            moderated.hooks.tell(
                f"sshtrail: {what}: {moderated.counted()}. What you type is held, "
                "not sent, until a moderator is back."
            )
        elif moderated.phase == "paused" and enough:
            moderated.phase = "running"
            moderated.hooks.note(f"resumed: {moderated.counted()}")
            moderated.hooks.tell(f"sshtrail: {what}; input flows again.")
            moderated.hooks.hold(False)
        self._publish(moderated, what)

    async def _sweep(self) -> None:
        """Moderators whose heartbeats stopped are gone, within :data:`SWEEP_S`."""
        while self._sessions:
            await asyncio.sleep(SWEEP_S)
            now = self.now()
            for moderated in list(self._sessions.values()):
                lapsed = [name for name, until in moderated.present.items() if until <= now]
                for name in lapsed:
                    del moderated.present[name]
                    self._left(
                        moderated, name, f"no word from them for {control.PRESENCE_TTL_S:g} s"
                    )

    def _publish(self, moderated: Moderated, detail: str) -> None:
        rule = moderated.rule
        state = control.ModerationState(
            request_id=control.new_id(),
            at=control.now_ns(),
            gateway=self._gateway,
            session=moderated.session,
            operator=moderated.operator,
            target=moderated.target,
            rule=rule.name,
            needed=rule.count,
            present=tuple(sorted(moderated.present)),
            phase=moderated.phase,
            on_leave=rule.on_leave,
            deadline=moderated.deadline_ns if moderated.phase == "waiting" else 0,
            detail=detail[:500],
        )
        problem = self._send(state)
        if problem is not None:
            log.warning("session %s: moderation state not published: %s", state.session, problem)
