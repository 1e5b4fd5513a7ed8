"""The access log's own retention: dropping rows older than ``retention.access_log_keep``.

Runs from the store group's retention work (consumer/retentionwork.py), looking at
most every ``retention.check_s`` seconds and stopping when its budget is spent. Each
chain is trimmed from its front, in one transaction per page of at most
:data:`PAGE` rows: the rows after the chain's last checkpoint (or from row 0) that
were written before the cutoff and that no kept row precedes are read, checked link
by link (a span that does not check stays, and is logged: a trim never launders a
row changed before it), their signed checkpoint written (sshtrail/accesstrims.py)
and the rows deleted. A failure rolls all of it back: rows are either there or
closed by a checkpoint, never gone without one.

Only rows of a chain go; the few written before the chains began (migration 0006)
stay, as the chains' heads pin them. Session rules never reach the access log, and
this never reaches a session. Every member of the store group runs it; two trimming
one chain at once cannot both win (the checkpoint's key is the chain and its last
dropped row, and the deletion must take exactly the rows checked).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, func, insert, select

from consumer.transaction import Transaction
from sshtrail import accesstrims
from sshtrail.accesschain import ZERO, row_digest
from sshtrail.accessrows import Row, raw_select, read
from sshtrail.durations import parse_duration
from sshtrail.errors import UnstorableError
from sshtrail.tables import ACCESS_LOG, ACCESS_LOG_TRIMS

log = logging.getLogger(__name__)

#: Rows dropped per transaction (and checkpoint).
PAGE = 1000


class _Raced(Exception):
    """Another member dropped some of the rows first: this page is rolled back."""


class AccessTrim:
    """Drops the access log's rows older than ``keep``; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        keep: str,
        check_s: float,
        signer: Ed25519PrivateKey,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._engine = engine
        self._keep_text = keep
        self._keep = parse_duration(keep)
        self._check_s = check_s
        self._signer = signer
        self._clock = clock
        self._by = f"store group on {socket.gethostname()}"
        self._next_look = 0.0
        #: Rows dropped since start (for logs and tests).
        self.dropped = 0

    def run(self, budget_s: float) -> bool:
        """Drop old rows for about ``budget_s``; whether more are due now."""
        if time.monotonic() < self._next_look:
            return False
        deadline = time.monotonic() + budget_s
        self._next_look = time.monotonic() + self._check_s
        now = self._clock()
        cutoff = now - self._keep
        with Transaction(self._engine, "access log trim plan") as conn:
            query = (
                select(ACCESS_LOG.c.chain)
                .where(ACCESS_LOG.c.chain.is_not(None), ACCESS_LOG.c.at < cutoff)
                .distinct()
            )
            chains = sorted(conn.execute(query).scalars())
        for chain in chains:
            while time.monotonic() < deadline:
                dropped = self._trim(chain, cutoff, now)
                self.dropped += dropped
                if dropped < PAGE:
                    break
            else:
                self._next_look = 0.0  # out of time: come back soon
                return True
        return False

    def _trim(self, chain: str, cutoff: dt.datetime, now: dt.datetime) -> int:
        """Drop one page of ``chain``'s old rows; how many went."""
        try:
            with Transaction(self._engine, "access log trim") as conn:
                since = accesstrims.latest(conn, chain)
                first, prev = (since[0] + 1, since[1]) if since is not None else (0, ZERO)
                in_chain = ACCESS_LOG.c.chain == chain
                kept_from = conn.execute(
                    select(func.min(ACCESS_LOG.c.n)).where(in_chain, ACCESS_LOG.c.at >= cutoff)
                ).scalar()
                query = raw_select().where(in_chain, ACCESS_LOG.c.n >= first)
                if kept_from is not None:
                    query = query.where(ACCESS_LOG.c.n < kept_from)
                rows = list(read(conn, query.order_by(ACCESS_LOG.c.n).limit(PAGE)))
                if not rows:
                    return 0
                problem = intact(rows, first, prev)
                if problem:
                    log.error(
                        "access log chain %s not trimmed: %s (access-log --verify says more)",
                        chain,
                        problem,
                    )
                    return 0
                last: int = rows[-1]["n"]
                checkpoint = accesstrims.checkpoint_row(
                    chain=chain,
                    first=first,
                    n=last,
                    digest=rows[-1]["digest"],
                    trimmed_at=now,
                    cutoff=cutoff,
                    keep=self._keep_text,
                    trimmed_by=self._by,
                    signer=self._signer,
                )
                conn.execute(insert(ACCESS_LOG_TRIMS).values(**checkpoint))
                gone = conn.execute(
                    delete(ACCESS_LOG).where(in_chain, ACCESS_LOG.c.n.between(first, last))
                ).rowcount
                if gone != len(rows):
                    raise _Raced
        except (_Raced, UnstorableError):  # another member's checkpoint came first
            return 0
        log.info("access log chain %s: rows %d-%d dropped (access_log_keep)", chain, first, last)
        return len(rows)


def intact(rows: Iterable[Row], first: int, prev: bytes) -> str:
    """Whether ``rows`` (of one chain, by n) are rows ``first``, ``first + 1``... each
    following the one before from ``prev``, each digest that of its fields: "" if so,
    else what is wrong."""
    expected = first
    for row in rows:
        if row.unreadable:
            return f"row {expected} cannot be read: {row.unreadable}"
        if row["n"] != expected:
            return f"row {expected} is missing"
        if row["prev"] != prev:
            return f"row {expected} does not follow the row before it"
        if row_digest(row.values) != row["digest"]:
            return f"row {expected}'s fields are not those its digest was made of"
        expected, prev = expected + 1, row["digest"]
    return ""
