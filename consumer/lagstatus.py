"""Whether a consumer group keeps up: a status per partition from a window of readings.

In the spirit of Burrow's evaluation (linkedin/Burrow, "Consumer Lag
Evaluation Rules"), over the readings of one partition, oldest first -- each
the committed offset, the log-end and earliest retained offsets, and whether
a member owns the partition:

* ``DATA-LOSS``: the committed offset is below the earliest retained one --
  retention deleted messages the group never read -- and the store does not have
  what they carried (:mod:`consumer.expired`: "expired, lost"); when it does
  ("expired, stored"), the partition is judged by the rules below from the
  earliest retained offset, and the reason says so first;
* ``REWIND``: the committed offset went back within the window;
* ``OK``: no lag;
* ``STOP``: lag, and no member owns the partition -- nothing will commit;
* ``STALL``: lag, owned, and the committed offset did not move over the
  window (a member stuck: a database outage, a poison message);
* ``WARN``: the lag never shrank over the window, and grew;
* ``WARN`` too, from one reading: the oldest unread message is older than
  the unread limit (the groups' session timeout) -- slow or stuck, one
  reading cannot tell which;
* ``OK`` otherwise: lag that is being worked off.

One reading can tell DATA-LOSS, OK, STOP and an old unread message; STALL,
REWIND and a growing lag need two or more (``sshtrail lag --window``,
``--watch`` and the exporter keep them). Severity orders them for a group's
status and the exit code.

Why one reading with an old unread message is not OK: a member that owns a
partition may read nothing -- frozen, fenced by the broker and not yet gone,
or kept as owner by the embedded broker after it died -- and a lone reading
of it looks like lag being worked off. A live member fetches a message within
a batch's wait and commits it after one write; Kafka gives a member that
stays silent for the session timeout's partitions to another. So a message
still unread after that long means the group reads nothing there or is far
behind (catching up after an outage): either way not OK. Which of the two, a
window tells: STALL if the committed offset does not move, OK if it does.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from consumer.expired import Expired


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    STALL = "STALL"
    STOP = "STOP"
    REWIND = "REWIND"
    DATA_LOSS = "DATA-LOSS"

    @property
    def severity(self) -> int:
        """0 OK, 1 WARN, 2 an error: what ``sshtrail lag`` exits with."""
        return {Status.OK: 0, Status.WARN: 1}.get(self, 2)


#: Worst first, among statuses of the same severity too.
_ORDER = (Status.DATA_LOSS, Status.REWIND, Status.STOP, Status.STALL, Status.WARN, Status.OK)


@dataclass(frozen=True, slots=True)
class Reading:
    """One partition of one group, read once."""

    at: float  # time.time() of the reading
    committed: int | None  # None: the group never committed here
    low: int  # earliest offset the broker still has
    end: int  # log-end offset
    owned: bool  # a member of the group owns the partition
    #: Age in seconds of the oldest unread message (the one at the committed
    #: offset); None when it was not read.
    oldest_s: float | None = None
    #: Below the log start (committed < low): what the store says of those offsets;
    #: None when it was not asked or could not answer.
    expired: Expired | None = None

    @property
    def lag(self) -> int:
        start = self.committed if self.committed is not None else self.low
        return max(self.end - start, 0)


def evaluate(window: Sequence[Reading], unread_limit_s: float = math.inf) -> tuple[Status, str]:
    """The status of a partition over ``window`` (oldest first, at least one), and why.

    ``unread_limit_s``: how old the oldest unread message may be before a lone
    reading is not OK (the groups' session timeout)."""
    last = window[-1]
    if last.committed is not None and last.committed < last.low:
        if last.expired is None or last.expired.lost:
            known = f"; {last.expired.describe()}" if last.expired else ""
            return Status.DATA_LOSS, (
                f"committed offset {last.committed} is below the earliest retained "
                f"{last.low}: {last.low - last.committed} messages were deleted before the "
                f"group read them{known}"
            )
        # Nothing of it is waiting in Kafka any more: judged from the log start.
        moved = dataclasses.replace(last, committed=last.low)
        status, reason = _judged([*window[:-1], moved], unread_limit_s)
        return status, f"{last.expired.describe()}; {reason}"
    return _judged(window, unread_limit_s)


def _judged(window: Sequence[Reading], unread_limit_s: float) -> tuple[Status, str]:
    """The status by the rules after DATA-LOSS (the module docstring)."""
    last = window[-1]
    commits = [r.committed for r in window if r.committed is not None]
    for before, after in itertools.pairwise(commits):
        if after < before:
            return Status.REWIND, f"committed offset went back from {before} to {after}"
    if last.lag == 0:
        return Status.OK, "caught up"
    if not last.owned:
        return Status.STOP, f"lag {last.lag} and no member owns the partition"
    if len(window) >= 2:
        span = last.at - window[0].at
        if len({r.committed for r in window}) == 1 and all(r.lag > 0 for r in window):
            return Status.STALL, (
                f"lag {last.lag} and the committed offset stayed at "
                f"{_shown(last.committed)} for {span:.0f} s"
            )
        lags = [r.lag for r in window]
        if lags[-1] > lags[0] and all(b >= a for a, b in itertools.pairwise(lags)):
            return Status.WARN, f"lag grew from {lags[0]} to {lags[-1]} in {span:.0f} s"
    elif last.oldest_s is not None and last.oldest_s > unread_limit_s:
        return Status.WARN, (
            f"lag {last.lag} and the oldest unread message is {last.oldest_s:.0f} s old, "
            f"over the {unread_limit_s:g} s session timeout: far behind, or nobody reads "
            "this partition; --window 30 tells slow (OK) from stuck (STALL)"
        )
    return Status.OK, f"lag {last.lag}, being consumed"


def worst(statuses: Sequence[Status]) -> Status:
    """The status that speaks for several (a group's, a run's)."""
    return min(statuses, key=_ORDER.index, default=Status.OK)


def _shown(offset: int | None) -> str:
    return "none" if offset is None else str(offset)
