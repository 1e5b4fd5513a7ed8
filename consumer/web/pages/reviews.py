"""The reviews page: commands held at the gateways for a second person's approval.

Every signed-in auditor sees the reviews of sessions in their scope, waiting ones
first; the list refreshes itself every two seconds (``console.js``). Those with the
``approve`` right (``auditors.approve``) answer from the page: the answer is signed
with the control key and sent on the control topic (:mod:`consumer.reviews`), and the
gateway that holds the review -- whichever it is -- runs the command or drops it. Nobody
may answer a review of their own command. Opening the page, and every answer, is in
the access log; the self-refreshing list is not (it is the page already logged).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from consumer.reviews import LOOK_BACK_S, ReviewBoard, ReviewItem, answer, in_scope
from consumer.web.auth import Auditor
from consumer.web.console import Console
from consumer.web.pages.base import Page
from sshtrail import control
from sshtrail.errors import BrokerError, InvalidError

#: Reviews that ended, shown under the waiting ones: the last this many.
ENDED_SHOWN = 50
_ID = re.compile(r"^[0-9a-f]{32}$")


class ReviewPages(Page):
    """``/reviews`` and the answers posted from it."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._board: ReviewBoard | None = None

    def close(self) -> None:
        if self._board is not None:
            self._board.close()

    def reviews(self, request: Request) -> Response:
        rows_only = request.query_params.get("part") == "rows"
        if not rows_only:
            self.console.log(request, "reviews")
        items, problem = self._current()
        context = self._listing(request.state.auditor, items)
        context["problems"] = [problem] if problem else []
        name = "review_rows.html" if rows_only else "reviews.html"
        return self.console.render(request, name, context, 503 if problem else 200)

    def answer(self, request: Request, review_id: str, approve: bool, reason: str) -> Response:
        """Approve or deny review ``review_id`` (``approve`` right, in scope, not one's own)."""
        auditor: Auditor = request.state.auditor
        if not _ID.match(review_id):
            raise HTTPException(404, "no such review")
        items, problem = self._current()
        if problem:
            raise HTTPException(503, problem)
        found = [item for item in in_scope(items, auditor.scope) if item.id == review_id]
        if not found:
            self.console.log(request, "denied", detail=f"review {review_id[:8]}: not in scope")
            raise HTTPException(404, "no such review")
        item = found[0]
        verb = "approve" if approve else "deny"
        if not auditor.may_approve:
            self.console.log(request, "denied", session_id=item.session_id, detail=verb)
            raise HTTPException(403, "you may not answer reviews (auditors.approve)")
        if auditor.name == item.request.operator:
            self.console.log(request, "denied", session_id=item.session_id, detail=f"{verb} own")
            raise HTTPException(403, "nobody may answer a review of their own command")
        if not reason:
            raise HTTPException(400, "give a reason: the operator is shown it, and it is recorded")
        self.console.log(
            request,
            verb,
            session_id=item.session_id,
            detail=f"review {item.id[:8]} of {item.request.command[:200]!r}: {reason}",
        )
        try:
            answered = answer(self.console.settings, item, approve, auditor.name, reason)
        except (BrokerError, InvalidError) as exc:
            raise HTTPException(503, f"the answer could not be sent: {exc}") from None
        done = answered.outcome in ("approved", "denied")
        return self.console.render(
            request,
            "review_answered.html",
            {
                "item": item,
                "outcome": answered.detail,
                "refused": answered.outcome == "refused",
                "done": done,
            },
            200 if done else 409,
        )

    def _current(self) -> tuple[list[ReviewItem], str | None]:
        try:
            if self._board is None:
                self._board = ReviewBoard(self.console.settings, LOOK_BACK_S)
            return self._board.current(), None
        except BrokerError as exc:
            return [], f"the control topic cannot be read: {exc}"

    def _listing(self, auditor: Auditor, items: list[ReviewItem]) -> dict[str, Any]:
        now = control.now_ns()
        seen = in_scope(items, auditor.scope)
        waiting = [_row(item, now, auditor) for item in seen if item.waiting(now)]
        ended = [_row(item, now, auditor) for item in reversed(seen) if not item.waiting(now)]
        return {"waiting": waiting, "ended": ended[:ENDED_SHOWN]}


def _row(item: ReviewItem, now: int, auditor: Auditor) -> dict[str, Any]:
    """A review as the page shows it: as ``reviews --json`` has it, and whether this
    auditor may answer it."""
    row = item.as_json(now)
    operator = item.request.operator
    row.update(
        short=item.id[:8],
        asked=dt.datetime.fromtimestamp(item.request.at / 1e9, dt.UTC),
        may_answer=auditor.may_approve and auditor.name != operator,
        own=auditor.name == operator,
    )
    return row
