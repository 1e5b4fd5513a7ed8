"""The Locks page: which operators are locked now, and locking or unlocking one (admins).

The list is :class:`~consumer.locks.LockBoard`'s, the lock or unlock in force for each
operator as the gateways decide it, and refreshes its rows every two seconds as the
reviews page does. Locking and unlocking go through the requester ``sshtrail lock``
uses (:func:`consumer.requester.ask`): signed with the control key, sent on the control
topic, kept there for gateways started later. Only admins may see the page or post to
it, since a lock refuses an operator everywhere; anyone else gets a 403 and a ``denied``
line in the access log. The page, each lock and each unlock are in the access log (the
self-refreshing rows are not: they are the page already logged).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from consumer.locks import LockBoard, LockItem
from consumer.requester import ask
from consumer.web.auth import Auditor
from consumer.web.console import Console
from consumer.web.pages.base import Page
from sshtrail import control
from sshtrail.errors import BrokerError

#: How long a lock or unlock waits for the gateways' answers. Every gateway answers, so
#: the wait is always spent in full: short, as the request stays on the topic anyway.
ANSWER_WAIT_S = 3.0
#: The longest operator name taken (the gateways' own names are far shorter).
OPERATOR_MAX = 128


class LockPages(Page):
    """``/locks``, and the locks and unlocks posted from it."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._board: LockBoard | None = None

    def close(self) -> None:
        if self._board is not None:
            self._board.close()

    def locks(self, request: Request) -> Response:
        rows_only = request.query_params.get("part") == "rows"
        self._admin_only(request, "the locks page")
        if not rows_only:
            self.console.log(request, "locks")
        items, problem = self._current()
        context = {
            "locks": [_row(item) for item in items],
            "problems": [problem] if problem else [],
        }
        name = "lock_rows.html" if rows_only else "locks.html"
        return self.console.render(request, name, context, 503 if problem else 200)

    def change(self, request: Request, lock: bool, fields: dict[str, str]) -> Response:
        """Lock (``end_sessions`` too when asked) or unlock the operator the form names."""
        verb = "lock" if lock else "unlock"
        self._admin_only(request, verb)
        auditor: Auditor = request.state.auditor
        operator = fields.get("operator", "").strip()
        if not operator or len(operator) > OPERATOR_MAX or not operator.isprintable():
            raise HTTPException(400, f"give the operator's name (1 to {OPERATOR_MAX} characters)")
        reason = fields["reason"]
        if not reason:
            raise HTTPException(400, "give a reason: the operator is shown it, and it is recorded")
        end_sessions = lock and fields.get("end_sessions") == "1"
        ending = " (and end their sessions)" if end_sessions else ""
        self.console.log(request, verb, detail=f"{operator}{ending}: {reason}")
        request_id, at = control.new_id(), control.now_ns()
        order: control.Lock | control.Unlock
        if lock:
            order = control.Lock(
                request_id=request_id,
                at=at,
                operator=operator,
                auditor=auditor.name,
                reason=reason,
                end_sessions=end_sessions,
            )
        else:
            order = control.Unlock(
                request_id=request_id, at=at, operator=operator, auditor=auditor.name, reason=reason
            )
        try:
            answers = ask(self.console.settings, order, ANSWER_WAIT_S)
        except BrokerError as exc:
            raise HTTPException(503, f"the request could not be sent: {exc}") from None
        return self.console.render(
            request,
            "lock_sent.html",
            {
                "verb": verb,
                "operator": operator,
                "answers": [(answer.gateway, answer.detail) for answer in answers],
                "wait_s": ANSWER_WAIT_S,
                "topic": self.console.settings.control.topic,
            },
            # Not answered is not undone: the request waits on the topic for the gateways.
            200 if answers else 202,
        )

    def _admin_only(self, request: Request, what: str) -> None:
        auditor: Auditor = request.state.auditor
        if not auditor.admin:
            self.console.log(request, "denied", detail=f"{what}: admins only")
            raise HTTPException(403, "only admins may see or change operator locks")

    def _current(self) -> tuple[list[LockItem], str | None]:
        try:
            if self._board is None:
                self._board = LockBoard(self.console.settings)
            return self._board.current(), None
        except BrokerError as exc:
            return [], f"the control topic cannot be read: {exc}"


def _row(item: LockItem) -> dict[str, object]:
    row = item.as_json()
    row["at"] = item.at
    return row
