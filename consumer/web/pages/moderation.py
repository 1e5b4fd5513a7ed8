"""The moderation page, and moderating a session from its page.

A session a ``[[moderation]]`` table covers starts only while enough moderators are
present, and pauses (or ends) when they are fewer (docs/moderation.md). The page lists
the moderated sessions of the auditor's scope that need a moderator and those running
under moderation, from the gateways' words on the control topic
(:class:`~consumer.moderation.ModerationBoard`); it refreshes its rows every two seconds
as the reviews page does. "Join as moderator" opens the session's live view with
``?moderate=1``; that page posts ``join``, then ``here`` every
:data:`~sshtrail.control.HEARTBEAT_S`, then ``leave`` to :meth:`ModerationPages.presence`,
which publishes each as a :class:`~sshtrail.control.Presence` signed by the control key
through the console's one :class:`~consumer.moderation.PresenceSender`. Whether the
auditor counts is the gateway's to decide (name or group in the table): the answer to
each heartbeat says what the gateway last said.

The access log has the page, each join and explicit leave, and each moderation whose
heartbeats stopped (:mod:`consumer.web.heartbeats`, swept on a thread of its own);
heartbeats themselves are not logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import OperationalError, ProgrammingError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consumer.moderation import (
    LOOK_BACK_S,
    ModerationBoard,
    ModerationItem,
    PresenceSender,
    in_scope,
)
from consumer.web import access
from consumer.web.auth import Auditor
from consumer.web.console import Console
from consumer.web.heartbeats import Ended, Heartbeats, Moderating, TooMany
from consumer.web.pages.base import Page
from sshtrail import control
from sshtrail.errors import BrokerError

log = logging.getLogger(__name__)

#: The states a session page may post, as the gateway reads them.
STATES: tuple[control.PresenceState, ...] = ("join", "here", "leave")
#: The statuses listed: those that need a moderator, then those running.
LISTED = ("waiting", "paused", "running")
#: How long a join or a leave waits for the broker to take it (a heartbeat does not).
SEND_WAIT_S = 2.0
#: The board is read at most this often: a look takes half a second or more (it reads
#: the control topic to its ends), and every moderator's page posts every second.
BOARD_FRESH_S = 1.0
#: How the access log tells a moderation begun by a heartbeat, not a join.
REJOINED = "joined at a heartbeat (its join was not taken, or heartbeats had stopped)"
#: A heartbeat that waited longer than this in the console is not sent: the presence is
#: stamped when it is sent, so a late one would keep a closed tab present.
LATE_S = control.HEARTBEAT_S


class Board(Protocol):
    """What the page reads: the moderated sessions, each at its gateway's latest word."""

    def current(self) -> list[ModerationItem]: ...

    def close(self) -> None: ...


class Presences(Protocol):
    """Where a moderator's presence goes (the control topic)."""

    def send(
        self,
        session: str,
        moderator: str,
        groups: Iterable[str],
        state: control.PresenceState,
        *,
        wait_s: float = 0.0,
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ModerationPorts:
    """The board, the presence sender and the heartbeats' clock a console uses (real
    ones by default), and how often the board is read."""

    board: Callable[[], Board]
    presences: Callable[[], Presences]
    clock: Callable[[], float] = time.monotonic
    fresh_s: float = BOARD_FRESH_S


def kafka_ports(console: Console) -> ModerationPorts:
    settings = console.settings
    return ModerationPorts(
        board=lambda: ModerationBoard(settings, LOOK_BACK_S),
        presences=lambda: PresenceSender(settings, "console"),
    )


class ModerationPages(Page):
    """``/moderation`` and the presence posted from a session page in moderator mode."""

    def __init__(self, console: Console, ports: ModerationPorts | None = None) -> None:
        super().__init__(console)
        self._ports = ports or kafka_ports(console)
        self._board: Board | None = None
        self._presences: Presences | None = None
        self._made = threading.Lock()
        #: The board's last look: what it said, its problem, when (monotonic).
        self._looking = threading.Lock()
        self._seen: tuple[list[ModerationItem], str | None] | None = None
        self._seen_at = 0.0
        self.heartbeats = Heartbeats(clock=self._ports.clock)
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    def close(self) -> None:
        """Stop sweeping; those still moderating are told ended in the access log."""
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        for gone in self.heartbeats.lapsed_all():
            self._ended(gone, "moderation ended (the console stopped)")
        with self._made:
            if self._board is not None:
                self._board.close()
            if self._presences is not None:
                self._presences.close()

    def moderation(self, request: Request) -> Response:
        rows_only = request.query_params.get("part") == "rows"
        if not rows_only:
            self.console.log(request, "moderation")
        items, problem = self._current()
        auditor: Auditor = request.state.auditor
        now = control.now_ns()
        rows = [_row(item, now, auditor) for item in in_scope(items, auditor.scope)]
        context: dict[str, Any] = {
            "needing": [r for r in rows if r["status"] in ("waiting", "paused")],
            "running": [r for r in rows if r["status"] == "running"],
            "problems": [problem] if problem else [],
        }
        name = "moderation_rows.html" if rows_only else "moderation.html"
        return self.console.render(request, name, context, 503 if problem else 200)

    def presence(self, request: Request, state: str, received: float) -> Response:
        """A join, heartbeat or leave for the session the path names: published if the
        session is moderated, in the auditor's scope, and (but for a leave) not over; a
        heartbeat only if it was ``received`` (monotonic) within :data:`LATE_S`."""
        auditor: Auditor = request.state.auditor
        if state not in STATES:
            raise HTTPException(400, f"state: one of {', '.join(STATES)}")
        try:
            session_id = uuid.UUID(str(request.path_params["sid"]))
        except ValueError:
            raise HTTPException(404, "no such session") from None
        items, problem = self._current()
        if problem:
            raise HTTPException(503, problem)
        found = [item for item in items if item.session_id == session_id]
        if not found:
            raise HTTPException(
                404, "this session is not moderated: no gateway holds it under a moderation rule"
            )
        item = found[-1]
        if not auditor.scope.allows(item.state.operator, item.state.target):
            self.console.log(request, "denied", session_id=session_id, detail=f"moderate {state}")
            raise HTTPException(403, "this session is outside your scope: you may not moderate it")
        status = item.status(control.now_ns())
        if state != "leave" and status not in LISTED:
            raise HTTPException(409, f"this session's moderation is over ({status})")
        self._sweep_once()
        if state == "leave":
            if self.heartbeats.end(auditor.name, item.session):
                self.console.log(request, "moderate-end", session_id=session_id, detail="left")
        else:
            try:
                self._beat(request, auditor, item, state)
            except Ended:
                # A heartbeat that was on its way when they ended their moderation: not
                # sent (the gateway would count them again), and not an error either.
                log.info(
                    "a heartbeat of %s for %s after their leave: not sent",
                    auditor.name,
                    item.session,
                )
                return JSONResponse(_standing(item, auditor, control.now_ns(), sent=False))
        if state == "here" and time.monotonic() - received > LATE_S:
            log.info("a heartbeat of %s for %s came too late: not sent", auditor.name, item.session)
            return JSONResponse(_standing(item, auditor, control.now_ns(), sent=False))
        try:
            self._sender().send(
                item.session,
                auditor.name,
                auditor.groups,
                state,
                wait_s=0.0 if state == "here" else SEND_WAIT_S,
            )
        except BrokerError as exc:
            raise HTTPException(503, f"the presence could not be sent: {exc}") from None
        return JSONResponse(_standing(item, auditor, control.now_ns(), sent=True))

    def _beat(self, request: Request, auditor: Auditor, item: ModerationItem, state: str) -> None:
        """Track the heartbeat; a moderation that begins here goes to the access log."""
        address = self.console.address(request)
        try:
            begins = self.heartbeats.beat(
                auditor.name, item.session, address, joining=state == "join"
            )
        except TooMany as exc:
            raise HTTPException(503, str(exc)) from None
        if begins:
            how = "joined" if state == "join" else REJOINED
            detail = f"{how}: rule {item.state.rule}, gateway {item.state.gateway}"
            try:
                self.console.log(request, "moderate", session_id=item.session_id, detail=detail)
            except HTTPException:
                self.heartbeats.end(auditor.name, item.session)  # not logged: not begun
                raise
        self._start_sweeping()

    def _current(self) -> tuple[list[ModerationItem], str | None]:
        """The board's latest look, at most ``fresh_s`` old -- or older while another
        thread is looking, rather than waiting for it."""
        with self._made:
            if self._board is None:
                self._board = self._ports.board()
            board = self._board
        if not self._looking.acquire(blocking=self._seen is None):
            assert self._seen is not None
            return self._seen
        try:
            if self._seen is None or time.monotonic() - self._seen_at >= self._ports.fresh_s:
                try:
                    self._seen = board.current(), None
                except BrokerError as exc:
                    self._seen = [], f"the control topic cannot be read: {exc}"
                self._seen_at = time.monotonic()
            return self._seen
        finally:
            self._looking.release()

    def _sender(self) -> Presences:
        with self._made:
            if self._presences is None:
                self._presences = self._ports.presences()
            return self._presences

    def _start_sweeping(self) -> None:
        with self._made:
            if self._sweeper is None and not self._stop.is_set():
                self._sweeper = threading.Thread(
                    target=self._sweep, name="moderation-heartbeats", daemon=True
                )
                self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(control.HEARTBEAT_S):
            self._sweep_once()

    def _sweep_once(self) -> None:
        for gone in self.heartbeats.lapsed():
            self._ended(gone, "moderation ended (no heartbeat)")

    def _ended(self, gone: Moderating, detail: str) -> None:
        try:
            access.record(
                self.console.access,
                gone.auditor,
                "moderate-end",
                gone.address,
                session_id=uuid.UUID(gone.session),
                detail=detail,
            )
        except (OperationalError, ProgrammingError, ValueError) as exc:
            log.error("cannot write the access log: %s (%s of %s)", exc, detail, gone.auditor)


def _standing(
    item: ModerationItem, auditor: Auditor, now_ns: int, *, sent: bool
) -> dict[str, object]:
    """What a session page in moderator mode shows: the gateway's last word, whether
    it counts this auditor, and whether this presence was sent (a late heartbeat is
    dropped, not an error: the next one follows within a second)."""
    shown = item.as_json(now_ns)
    shown.update(counted=auditor.name in item.state.present, you=auditor.name, sent=sent)
    return shown


def _row(item: ModerationItem, now: int, auditor: Auditor) -> dict[str, Any]:
    """A moderated session as the page lists it: the gateway's last word, and whether it
    counts this auditor."""
    row = item.as_json(now)
    session = item.session_id
    row.update(
        id=session.hex if session is not None else "",
        short=session.hex[:12] if session is not None else item.session[:12],
        since=dt.datetime.fromtimestamp(item.state.at / 1e9, dt.UTC),
        counted=auditor.name in item.state.present,
    )
    return row
