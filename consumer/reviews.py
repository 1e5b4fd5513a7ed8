"""Four-eyes reviews as the auditors see them: read from the control topic, and answered.

A gateway that holds a command for approval publishes a signed
:class:`~sshtrail.control.ReviewRequest`; when the review ends (approved, denied,
timed out, cancelled by the operator, the session ended), it publishes a
:class:`~sshtrail.control.Result` naming it. So the reviews of the last hours are the
requests on the topic since then, each with its end if it has one: without one, it is
waiting -- unless its gateway's wait is over, which means that gateway stopped without
saying (``expired``). Requests and results are believed only when signed by a gateway
key these settings trust (``control.gateway_keys`` and the gateway's own), answers
only when signed by a trusted control key.

Used by ``sshtrail reviews`` / ``review`` and the web console's reviews page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from consumer.controlboard import MAX_MESSAGES, ControlBoard
from consumer.requester import ask
from sshtrail import control
from sshtrail.errors import InvalidError, NotFound
from sshtrail.scope import Scope
from sshtrail.settings import Settings

#: The keys of the gateways' messages a review board reads: review requests and results
#: (not their moderation states, whose signatures it need not check).
_GATEWAYS_WORDS = (control.REVIEW_PREFIX, control.RESULT_PREFIX)
#: How far back ``reviews`` looks by default, in seconds.
LOOK_BACK_S = 24 * 3600
Status = Literal[
    "waiting", "approved", "denied", "timed out", "cancelled", "ended", "expired", "refused"
]


@dataclass(slots=True)
class ReviewItem:
    """One review: the gateway's request, its answers, and its end if it ended."""

    request: control.ReviewRequest
    end: control.Result | None = None
    answers: list[control.ReviewAnswer] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.request.request_id

    @property
    def session_id(self) -> uuid.UUID | None:
        try:
            return uuid.UUID(self.request.session)
        except ValueError:
            return None

    def status(self, now_ns: int) -> Status:
        if self.end is not None:
            outcome = self.end.outcome
            return outcome if outcome in _ENDINGS else "ended"  # type: ignore[return-value]
        deadline = self.request.at + int(self.request.timeout_s * 1e9)
        return "waiting" if now_ns < deadline else "expired"

    def waiting(self, now_ns: int) -> bool:
        return self.status(now_ns) == "waiting"

    def seconds_left(self, now_ns: int) -> float:
        return max(0.0, (self.request.at + self.request.timeout_s * 1e9 - now_ns) / 1e9)

    def as_json(self, now_ns: int) -> dict[str, object]:
        request = self.request
        return {
            "id": request.request_id,
            "status": self.status(now_ns),
            "session": request.session,
            "operator": request.operator,
            "target": request.target,
            "rule": request.rule,
            "message": request.message,
            "command": request.command,
            "gateway": request.gateway,
            "asked_at_ns": request.at,
            "timeout_s": request.timeout_s,
            "seconds_left": round(self.seconds_left(now_ns), 1),
            "ended": None if self.end is None else self.end.detail,
        }


_ENDINGS = ("approved", "denied", "timed out", "cancelled", "ended", "refused")


def read_reviews(settings: Settings, look_back_s: float = LOOK_BACK_S) -> list[ReviewItem]:
    """The reviews asked for in the last ``look_back_s`` seconds, oldest first."""
    board = ReviewBoard(settings, look_back_s)
    try:
        return board.current()
    finally:
        board.close()


class ReviewBoard(ControlBoard):
    """The reviews on the control topic, kept current: each :meth:`current` reads what
    came since the last one (the web console keeps one open; the CLI reads once).
    Thread-safe; a broker error drops the reader, and the next look starts again."""

    def __init__(self, settings: Settings, look_back_s: float = LOOK_BACK_S) -> None:
        super().__init__(settings, look_back_s, "reviews")
        self._items: dict[str, ReviewItem] = {}
        #: Results and answers read before the review they name (another partition).
        self._results: dict[str, control.Result] = {}
        self._answers: dict[str, list[control.ReviewAnswer]] = {}

    def current(self) -> list[ReviewItem]:
        """Every review of the look-back, oldest first, as of the topic's log ends now."""
        with self.reading():
            oldest = control.now_ns() - int(self.look_back_s * 1e9)
            for review_id in [i for i, item in self._items.items() if item.request.at < oldest]:
                del self._items[review_id]
            return sorted(self._items.values(), key=lambda item: item.request.at)

    def _take(self, key: bytes, value: bytes | None) -> None:
        if key.startswith(_GATEWAYS_WORDS):
            found = self.decoded(value, self.gateways, key)
        elif key.startswith(control.ANSWER_PREFIX):
            found = self.decoded(value, self.auditors, key)
        else:
            return
        if isinstance(found, control.ReviewRequest):
            if found.request_id in self._items:
                return  # a copy re-sent: the first stands, with its end and answers
            item = ReviewItem(found, self._results.pop(found.request_id, None))
            item.answers += self._answers.pop(found.request_id, [])
            self._items[found.request_id] = item
        elif isinstance(found, control.Result):
            named = self._items.get(found.request_id)
            if named is not None:
                named.end = found
            elif len(self._results) < MAX_MESSAGES:  # answers' results, or one read early
                self._results[found.request_id] = found
        elif isinstance(found, control.ReviewAnswer):
            named = self._items.get(found.review)
            if named is not None:
                named.answers.append(found)
            elif len(self._answers) < MAX_MESSAGES:
                self._answers.setdefault(found.review, []).append(found)


def in_scope(items: Iterable[ReviewItem], scope: Scope) -> list[ReviewItem]:
    """The reviews of sessions ``scope`` may see (operator and target)."""
    return [item for item in items if scope.allows(item.request.operator, item.request.target)]


def find(items: Iterable[ReviewItem], given: str) -> ReviewItem:
    """The review ``given`` (its id, or a unique start of it, as shown: 8 characters)."""
    given = given.strip().lower()
    if len(given) < 4:
        raise InvalidError(f"review {given!r}: give at least 4 characters of its id")
    found = [item for item in items if item.id.startswith(given)]
    if not found:
        raise NotFound(f"no review {given!r} in the control topic's last day")
    if len(found) > 1:
        raise InvalidError(f"review {given!r} is ambiguous: {', '.join(i.id for i in found)}")
    return found[0]


@dataclass(frozen=True, slots=True)
class Answered:
    """What became of an answer: ``approved``, ``denied``, ``refused`` (the gateway
    says why in ``detail``), or None when no gateway answered in time."""

    outcome: control.Outcome | None
    detail: str


def answer(
    settings: Settings,
    item: ReviewItem,
    approve: bool,
    auditor: str,
    reason: str,
    *,
    wait_s: float = 10.0,
) -> Answered:
    """Send an answer to review ``item`` signed by the control key and hear from the
    gateway that holds it. The auditor may not be the operator (the gateway checks
    too); only a waiting review is answered."""
    if auditor == item.request.operator:
        raise InvalidError(f"{auditor} may not answer a review of their own command")
    status = item.status(control.now_ns())
    if status != "waiting":
        detail = item.end.detail if item.end is not None else "its gateway's wait is over"
        return Answered("refused", f"review {item.id[:8]} is {status}: {detail}")
    request = control.ReviewAnswer(
        request_id=control.new_id(),
        at=control.now_ns(),
        review=item.id,
        session=item.request.session,
        approve=approve,
        auditor=auditor,
        reason=reason,
    )
    results = ask(settings, request, wait_s)
    if not results:
        return Answered(None, "no gateway answered: the session may have ended meanwhile")
    return Answered(results[0].outcome, results[0].detail)
