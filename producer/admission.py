"""Who and what the gateway lets in: one place for every limit and the spool policy.

Each question gets one typed answer:

* a new connection (:meth:`Admission.connection`): let it try to log in, or
  refuse it -- too many connections waiting to log in, overall or from its
  address, or too many failed logins from its address;
* an authentication attempt (:meth:`Admission.attempt`): evaluate it, or
  refuse it unseen -- too many failures on this connection (OpenSSH's
  ``MaxAuthTries``), from its address or for its operator name across
  connections;
* a new channel (:meth:`Admission.channel`): open it, or refuse it -- the
  gateway is stopping, or at its session limits;
* its operator (:meth:`Admission.operator`): let in, or refuse -- locked,
  or the gateway has not yet read who is locked (fail-closed: a gateway that
  has not read the control topic to its end cannot tell a locked operator
  from one never locked);
* its recording (:meth:`Admission.recording`): :class:`Record` it,
  :class:`Unrecorded` (the spool is full and the policy is fail-open), or
  :class:`Refuse` it (the spool is full and the policy is fail-closed, or even
  the reserve is used up).

Failures are counted per attempt, not per connection: a client that keeps
one connection open and guesses passwords is limited like one that
reconnects. Failures and connections waiting to log in are counted per
gateway, not per worker: in memory every worker shares
(``producer/sharedfailures.py``, ``producer/sharedpending.py``, which say what
that costs).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from producer.sharedfailures import SharedFailures, new_salt
from producer.sharedpending import SharedPending
from sshtrail.settings import GatewaySettings

log = logging.getLogger(__name__)

#: The key under which refusals for unread locks are rate-limited in the log.
_LOCKS_UNREAD = "(locks)"


class SpoolState(enum.StrEnum):
    OK = "ok"  # below spool.max_bytes
    FULL = "full"  # beyond max_bytes: the policy applies
    RESERVE = "reserve"  # beyond max_bytes + reserve_bytes too: nothing new at all


@dataclass(frozen=True, slots=True)
class Record:
    """Admit and record."""


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """Admit without recording (fail-open); ``reason`` goes into the audit record."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Do not admit. ``message`` is for the operator; ``kind`` is what the gateway's
    metrics count it as (:data:`~producer.metrics.REFUSAL_KINDS`, a few fixed words), and
    with ``detail`` (free text, appended as it is) the audit record's :attr:`reason`."""

    message: str
    kind: str
    detail: str = ""

    @property
    def reason(self) -> str:
        """For the audit record: ``refused: KIND`` and the detail, if any."""
        return f"refused: {self.kind}{self.detail}"


Verdict = Record | Unrecorded | Refuse


class LockHolder(Protocol):
    """A lock in force: who locked, and why."""

    @property
    def auditor(self) -> str: ...

    @property
    def reason(self) -> str: ...


class LockSource(Protocol):
    """What admission asks of the locks (``producer/controllistener.py``'s listener)."""

    def unread(self) -> str | None:
        """None once every lock is known; otherwise why not."""

    def locked(self, operator: str) -> LockHolder | None: ...


class Admission:
    """The gateway's limits; state shared by all connections of one process, and the
    failed logins and connections waiting to log in by every worker's (``failures``,
    ``pending``; cells of its own if None)."""

    def __init__(
        self,
        gw: GatewaySettings,
        clock: Callable[[], float] = time.monotonic,
        failures: SharedFailures | None = None,
        pending: SharedPending | None = None,
    ) -> None:
        self._gw = gw
        self._clock = clock
        self._failures = failures if failures is not None else SharedFailures.private()
        self._pending = pending if pending is not None else SharedPending.private(new_salt())
        self._last_noted: dict[str, float] = {}
        self.accepting = True
        #: Refusals by kind since the start (read by the gateway's metrics).
        self.refusals: Counter[str] = Counter()

    # -- connections ----------------------------------------------------------------

    def connection(self, address: str) -> Refuse | None:
        """A new connection from ``address``; counted as waiting to log in if admitted."""
        gw = self._gw
        if self._failed_from(address) >= gw.auth_attempts_per_minute:
            return Refuse("too many failed logins; try again later", "too many failures")
        if self._pending.of(address) >= gw.max_pending_logins_per_address:
            return Refuse(
                "too many connections from your address waiting to log in",
                "too many pending logins",
            )
        if self._pending.total() >= gw.max_pending_logins:
            return Refuse(
                "too many connections waiting to log in; try again later",
                "too many pending logins",
            )
        self._pending.add(address, 1)
        return None

    def logged_in_or_gone(self, address: str) -> None:
        """A connection :meth:`connection` admitted no longer waits to log in."""
        self._pending.add(address, -1)

    # -- authentication attempts ------------------------------------------------------

    def attempt(self, address: str, operator: str, failed_here: int) -> Refuse | None:
        """May an authentication attempt be evaluated? ``failed_here``: failures so far
        on this connection."""
        gw = self._gw
        if failed_here >= gw.max_auth_tries:
            return Refuse("too many authentication failures", "too many authentication failures")
        if self._failed_from(address) >= gw.auth_attempts_per_minute:
            return Refuse("too many failed logins; try again later", "too many failures")
        if operator and self._failed_as(operator) >= gw.auth_failures_per_operator:
            return Refuse(
                "too many failed logins for this operator; try again later",
                "too many failures for this operator",
            )
        return None

    def failed(self, address: str, operator: str) -> None:
        """An attempt failed: it counts against the address and the operator name."""
        now = self._clock()
        self._failures.add("a" + address, now)
        if operator:
            self._failures.add("o" + operator, now)

    def _failed_from(self, address: str) -> int:
        return self._failures.count("a" + address, self._clock())

    def _failed_as(self, operator: str) -> int:
        return self._failures.count("o" + operator, self._clock())

    # -- channels and their recording ---------------------------------------------------

    def channel(self, operator: str, open_total: int, open_by_operator: int) -> Refuse | None:
        """A new channel of ``operator``, with this many sessions open."""
        gw = self._gw
        if not self.accepting:
            return Refuse("the gateway is shutting down", "shutting down")
        if open_total >= gw.max_sessions:
            return Refuse(
                f"the gateway is at its limit of {gw.max_sessions} sessions",
                "max_sessions",
            )
        if open_by_operator >= gw.max_sessions_per_operator:
            return Refuse(
                f"you have {gw.max_sessions_per_operator} sessions open already",
                "max_sessions_per_operator",
            )
        return None

    def operator(self, operator: str, locks: LockSource | None) -> Refuse | None:
        """May ``operator`` open a session? Not while locked, nor before the locks are
        known (``locks`` None: the control listener is not running yet)."""
        unread = "the control listener is not started" if locks is None else locks.unread()
        if unread is not None:
            now = self._clock()
            if now - self._last_noted.get(_LOCKS_UNREAD, -10.0) >= 10:
                self._last_noted[_LOCKS_UNREAD] = now
                log.warning(
                    "refusing %s: operator locks not known yet (%s); further such "
                    "refusals for 10 s not logged",
                    operator,
                    unread,
                )
            return Refuse(
                "the gateway has not yet read which operators are locked "
                f"({unread}); try again shortly",
                "locks not read",
            )
        assert locks is not None
        locked = locks.locked(operator)
        if locked is not None:
            return Refuse(
                f"operator {operator} is locked by {locked.auditor}: {locked.reason}",
                "operator locked",
                f" by {locked.auditor}: {locked.reason}",
            )
        return None

    def recording(self, state: SpoolState) -> Verdict:
        """What a new session gets, with the spool in ``state`` when it was requested."""
        if state is SpoolState.RESERVE or (
            state is SpoolState.FULL and self._gw.spool.policy == "fail-closed"
        ):
            return Refuse(
                "the recording spool is full (is Kafka down?); new sessions are refused "
                "until it drains",
                "spool full",
            )
        if state is SpoolState.FULL:
            return Unrecorded("unrecorded: spool full (fail-open)")
        return Record()

    def spool_state(self, pending: int) -> SpoolState:
        """The spool's state with ``pending`` bytes not yet in Kafka."""
        spool = self._gw.spool
        if pending < spool.max_bytes:
            return SpoolState.OK
        if pending < spool.max_bytes + spool.reserve_bytes:
            return SpoolState.FULL
        return SpoolState.RESERVE

    # -- the log ------------------------------------------------------------------------

    def counted(self, kind: str) -> None:
        """A refusal, counted by its kind (the gateway's metrics)."""
        self.refusals[kind] += 1

    def note(self, address: str, message: str, kind: str) -> None:
        """Count a refusal of ``address`` by its ``kind`` and log ``message``, at most
        every 10 s per address: a flood must not flood the log."""
        self.counted(kind)
        now = self._clock()
        if now - self._last_noted.get(address, -10.0) >= 10:
            self._last_noted[address] = now
            log.warning(
                "%s: %s (further refusals of this address for 10 s not logged)", address, message
            )
        if len(self._last_noted) > 10_000:  # forget addresses seen long ago
            self._last_noted = {a: t for a, t in self._last_noted.items() if now - t < 10}
