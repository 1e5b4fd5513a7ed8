"""Four-eyes reviews held by this gateway: a command waiting for an auditor's answer.

A rule whose action is ``review`` holds the operator's command (docs/policy.md): the
gateway publishes a :class:`~sshtrail.control.ReviewRequest` on the control topic and
waits, at most ``policy.review_timeout_s``, for a
:class:`~sshtrail.control.ReviewAnswer` signed by a trusted control key
(``producer/controllistener.py`` checks the signature and the key, and that it is
fresh). Here the answer is checked against the review it names: this gateway holds it,
it is for the same session, and the auditor is not the operator whose command it is.
The first answer that passes ends the review; any later one is refused (a replay, or a
second auditor too late). Every answer gets a :class:`~sshtrail.control.Result`, and
the review gets one when it ends, so ``sshtrail reviews`` knows it is closed.

Everything here runs on the gateway's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sshtrail import control

log = logging.getLogger(__name__)

#: Reviews that ended, remembered so that a late or replayed answer is told why not.
KEEP_ENDED = 1000
#: The longest command held for review: its request must fit a control message (a
#: longer one is not reviewable, and is refused at once rather than never shown).
MAX_COMMAND = 8 << 10

Ending = Literal["approved", "denied", "timed out", "cancelled", "ended", "unavailable"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """How a review ended: ``approved`` runs the command, anything else does not."""

    outcome: Ending
    #: Who answered (approved or denied), else None.
    auditor: str | None
    reason: str
    waited_s: float

    @property
    def approved(self) -> bool:
        return self.outcome == "approved"

    def describe(self) -> str:
        """``denied by NAME after 3.2 s: REASON``, for the record and the operator."""
        return f"{self.outcome}{self.detail()}"

    def detail(self, *, quoted: bool = False) -> str:
        """`` by NAME after 3.2 s: REASON`` (what follows the outcome); ``quoted``, the
        reason as a JSON string, for the record: a reason may hold ``: `` itself, and
        the command follows it there (``sshtrail/sessionevents.py`` splits them)."""
        who = f" by {self.auditor}" if self.auditor else ""
        reason = json.dumps(self.reason, ensure_ascii=False) if quoted else self.reason
        why = f": {reason}" if self.reason else ""
        return f"{who} after {self.waited_s:.1f} s{why}"


@dataclass(frozen=True, slots=True)
class Held:
    """What is held for review, as the gateway asks for it."""

    session: str
    operator: str
    target: str
    rule: str
    message: str
    command: str


class Review:
    """One review under way; :meth:`cancel` ends it without an answer."""

    def __init__(
        self, reviews: Reviews, request: control.ReviewRequest, done: Callable[[Verdict], None]
    ) -> None:
        self.request = request
        self._reviews = reviews
        self._done = done
        self._started = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self.request.request_id

    def cancel(self, outcome: Ending = "cancelled", reason: str = "") -> None:
        self._reviews.end(self, outcome, None, reason)

    def _end(self, outcome: Ending, auditor: str | None, reason: str) -> Verdict:
        if self._timer is not None:
            self._timer.cancel()
        verdict = Verdict(outcome, auditor, reason, time.monotonic() - self._started)
        self._done(verdict)
        return verdict


class Reviews:
    """The reviews this gateway holds. ``send`` publishes a signed control message
    (None if it could not be handed to the producer)."""

    def __init__(
        self,
        gateway: str,
        timeout_s: float,
        send: Callable[[control.Message], str | None],
    ) -> None:
        self._gateway = gateway
        self._timeout_s = timeout_s
        self._send = send
        self._open: dict[str, Review] = {}
        self._ended: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def ask(self, held: Held, done: Callable[[Verdict], None]) -> Review:
        """Publish a review of ``held``; ``done`` is called once, when it ends (answered,
        timed out, cancelled, or at once with ``unavailable`` if it cannot be asked)."""
        request = control.ReviewRequest(
            request_id=control.new_id(),
            at=control.now_ns(),
            gateway=self._gateway,
            session=held.session,
            operator=held.operator,
            target=held.target,
            rule=held.rule,
            message=held.message,
            command=held.command,
            timeout_s=self._timeout_s,
        )
        review = Review(self, request, done)
        if len(held.command.encode()) > MAX_COMMAND:
            review._end("unavailable", None, f"a command of more than {MAX_COMMAND} bytes")
            return review
        problem = self._send(request)
        if problem is not None:
            log.warning("cannot ask for review %s: %s", request.request_id, problem)
            review._end("unavailable", None, f"the request could not be sent: {problem}")
            return review
        self._open[review.id] = review
        review._timer = asyncio.get_running_loop().call_later(
            self._timeout_s, lambda: self.end(review, "timed out", None, "")
        )
        log.info(
            "session %s: command held for review %s (rule %s)",
            held.session,
            review.id,
            held.rule,
        )
        return review

    def undelivered(self, review_id: str, problem: str) -> None:
        """The request for review ``review_id`` did not reach the topic: no one can
        answer it, so it ends now rather than at its timeout."""
        review = self._open.get(review_id)
        if review is not None:
            self.end(review, "unavailable", None, f"the request could not be sent: {problem}")

    def answered(self, answer: control.ReviewAnswer) -> None:
        """An auditor's answer (signed, fresh) read from the control topic: ends the
        review it names, if this gateway holds it and the answer may end it."""
        review = self._open.get(answer.review)
        if review is None:
            ended = self._ended.get(answer.review)
            if ended is not None:  # ours once: a late answer, or a replay
                log.warning("refused an answer to review %s: it %s", answer.review, ended)
                self._result(answer.request_id, "refused", f"the review {ended}")
            return  # another gateway's review
        refusal = _refusal(review.request, answer)
        if refusal is not None:
            log.warning("refused an answer to review %s: %s", answer.review, refusal)
            self._result(answer.request_id, "refused", refusal)
            return
        outcome: Ending = "approved" if answer.approve else "denied"
        verdict = self.end(review, outcome, answer.auditor, answer.reason)
        if verdict is not None:
            self._result(answer.request_id, outcome, verdict.describe())

    def end(
        self, review: Review, outcome: Ending, auditor: str | None, reason: str
    ) -> Verdict | None:
        """End ``review`` (once; None if it had ended) and say so on the topic."""
        if self._open.pop(review.id, None) is None:
            return None
        verdict = review._end(outcome, auditor, reason)
        self._ended[review.id] = verdict.describe()
        while len(self._ended) > KEEP_ENDED:
            self._ended.popitem(last=False)
        log.info("review %s %s", review.id, verdict.describe())
        if outcome != "unavailable":
            self._result(review.id, outcome, verdict.describe())
        return verdict

    def _result(self, request_id: str, outcome: control.Outcome, detail: str) -> None:
        result = control.Result(
            request_id=request_id,
            at=control.now_ns(),
            gateway=self._gateway,
            outcome=outcome,
            detail=detail,
        )
        problem = self._send(result)
        if problem is not None:
            log.warning("cannot answer control request %s: %s", request_id, problem)


def _refusal(request: control.ReviewRequest, answer: control.ReviewAnswer) -> str | None:
    """Why ``answer`` may not end the review ``request``, if it may not."""
    if answer.session != request.session:
        return f"it names session {answer.session[:40]!r}, the review is of {request.session}"
    if answer.auditor == request.operator:
        return f"{answer.auditor} may not answer a review of their own command"
    return None
