"""The store group's retention: deleting what the rules say is due, between batches.

Runs from :meth:`consumer.store.StoreWriter.background`, so it never holds up a
partition's consumption for more than the runner's background budget: it looks at
most every ``retention.check_s`` seconds, plans a page of due sessions
(sshtrail/retention.py) and deletes them one transaction each
(consumer/deletion.py) until the budget is spent, then says more is waiting so
the runner comes back soon. Held sessions are skipped, every time, and counted.

Every member of the store group runs it; two deleting the same session is safe
(the second finds its row gone, or waits on its lock and then finds it gone).

On a partitioned PostgreSQL store (sshtrail/partitions.py) each look also makes the
partitions of the months ahead, rules or not, and, before the page of sessions,
drops whole months whose every session is due and none held
(:func:`consumer.deletion.drop_month`): a month is one transaction, however many
sessions it holds. A month found not wholly due is looked at again only after
:data:`MONTH_RECHECK_S`, so a held session does not cost a month's scan a minute.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from consumer.accesstrim import AccessTrim
from consumer.deletion import Deletion, Held, delete_session, drop_month
from consumer.transaction import Transaction
from sshtrail import partitions, retention
from sshtrail.errors import NotFound
from sshtrail.tombstone import BY_RETENTION

log = logging.getLogger(__name__)

#: Sessions planned per look; more wait for the next call.
PLAN_PAGE = 200
#: Seconds before a month found not wholly due is looked at again.
MONTH_RECHECK_S = 3600.0


class RetentionWork:
    """Deletes due sessions for the store group; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        rules: Sequence[retention.Rule],
        check_s: float,
        signer: Ed25519PrivateKey | None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        *,
        access_trim: AccessTrim | None = None,
    ) -> None:
        """``signer`` signs the tombstones: needed when there are ``rules``."""
        if rules and signer is None:
            raise ValueError("retention rules need a deletion key to sign tombstones")
        #: The access log's own retention (consumer/accesstrim.py), not the rules'.
        self._access_trim = access_trim
        self._engine = engine
        self._rules = list(rules)
        self._check_s = check_s
        self._signer = signer
        self._clock = clock
        self._next_look = 0.0
        self._waiting: list[retention.Due] = []
        #: Months found not wholly due, and when to look at them again (monotonic).
        self._kept_months: dict[partitions.Month, float] = {}
        #: Sessions deleted since start (for logs and tests), whole months' included.
        self.deleted = 0
        #: Months dropped whole since start.
        self.months_dropped = 0

    def run(self, budget_s: float) -> bool:
        """Delete due sessions for about ``budget_s``; whether more are due now."""
        trimming = self._access_trim is not None and self._access_trim.run(budget_s / 2)
        deadline = time.monotonic() + budget_s
        if not self._waiting:
            if time.monotonic() < self._next_look:
                return trimming
            self._next_look = time.monotonic() + self._check_s
            with Transaction(self._engine, "partitions ahead") as conn:
                partitions.ensure_months(conn, self._clock())
            if not self._rules:
                return trimming
            self._drop_months()
            with Transaction(self._engine, "retention plan") as conn:
                planned = retention.plan(conn, self._rules, self._clock(), PLAN_PAGE)
            held = [item for item in planned if item.held_by]
            if held:
                log.info("retention: %d due sessions are under legal hold: kept", len(held))
            self._waiting = [item for item in planned if not item.held_by]
            if len(self._waiting) == PLAN_PAGE:
                self._next_look = 0.0  # a full page: look again as soon as it is done
        while self._waiting and time.monotonic() < deadline:
            self._delete(self._waiting.pop(0))
        return bool(self._waiting) or self._next_look == 0.0 or trimming

    def _drop_months(self) -> None:
        """Drop the months that may be wholly due (their end is older than the
        shortest ``keep``) and have not been found otherwise within the hour."""
        at = self._clock()
        shortest = min(rule.keep for rule in self._rules)
        with Transaction(self._engine, "retention months") as conn:
            candidates = [
                month
                for month in partitions.months(conn)
                if month.end + shortest <= at
                and self._kept_months.get(month, 0.0) <= time.monotonic()
            ]
        assert self._signer is not None  # there are rules: checked at start
        for month in candidates:
            with Transaction(self._engine, "retention month") as conn:
                dropped = drop_month(conn, month, lambda session: self._decide(session, at))
            if dropped is None:
                self._kept_months[month] = time.monotonic() + MONTH_RECHECK_S
                continue
            self._kept_months.pop(month, None)
            self.months_dropped += 1
            self.deleted += dropped

    def _decide(self, session: Mapping[str, Any], at: dt.datetime) -> Deletion | None:
        """``session``'s deletion by its rule at ``at``, or ``None`` when not due then."""
        rule = retention.rule_for(self._rules, session["operator"], session["target"])
        end = retention.ended(session)
        if rule is None or end is None or end + rule.keep > self._clock():
            return None
        return self._deletion(rule, at)

    def _deletion(self, rule: retention.Rule, at: dt.datetime) -> Deletion:
        assert self._signer is not None  # there are rules: checked at start
        return Deletion(rule.name, BY_RETENTION, _reason(rule), self._signer, at)

    def _delete(self, item: retention.Due) -> None:
        session_id = item.session["id"]
        try:
            with Transaction(self._engine, "retention delete") as conn:
                delete_session(conn, session_id, self._deletion(item.rule, self._clock()))
        except Held as held:  # placed since the plan was made
            log.info("retention: %s", held)
        except NotFound:  # another member deleted it first
            return
        else:
            self.deleted += 1


def _reason(rule: retention.Rule) -> str:
    return f"kept {_duration(rule.keep)} after it ended"


def _duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
