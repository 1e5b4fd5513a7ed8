"""The status rules of ``sshtrail lag``, reading by reading; and how ``reprocess`` retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consumer.lagstatus import Reading, Status, evaluate, worst
from consumer.reprocess import Retry
from sshtrail.errors import DatabaseError, InvalidError


def r(
    at: float,
    committed: int | None,
    end: int,
    low: int = 0,
    *,
    owned: bool = True,
    oldest: float | None = None,
) -> Reading:
    return Reading(at, committed, low, end, owned, oldest)


def test_one_reading_tells_ok_stop_and_data_loss() -> None:
    assert evaluate([r(0, 10, 10)])[0] is Status.OK
    assert evaluate([r(0, 5, 10)])[0] is Status.OK  # lag being worked off, as far as one tells
    assert evaluate([r(0, 5, 10, owned=False)])[0] is Status.STOP
    assert evaluate([r(0, None, 10, owned=False)])[0] is Status.STOP
    status, why = evaluate([r(0, 3, 10, low=7)])
    assert status is Status.DATA_LOSS
    assert "4 messages were deleted" in why


def test_a_window_tells_stall_warn_rewind_and_progress() -> None:
    assert evaluate([r(0, 5, 10), r(5, 5, 12), r(10, 5, 12)])[0] is Status.STALL
    assert evaluate([r(0, 5, 10), r(5, 7, 13), r(10, 9, 16)])[0] is Status.WARN
    assert evaluate([r(0, 5, 10), r(5, 8, 12), r(10, 11, 12)])[0] is Status.OK
    assert evaluate([r(0, 9, 10), r(5, 2, 10)])[0] is Status.REWIND
    assert evaluate([r(0, 10, 10), r(5, 10, 10)])[0] is Status.OK  # idle, caught up


def test_one_reading_with_an_old_unread_message_is_not_ok() -> None:
    """Issue 40: a member the broker fenced (or the embedded broker kept as owner) holds
    the partition and reads nothing; one reading of it must not say OK."""
    status, why = evaluate([r(0, 4, 12, oldest=191.4)], unread_limit_s=45)
    assert status is Status.WARN
    assert why == (
        "lag 8 and the oldest unread message is 191 s old, over the 45 s session timeout: "
        "far behind, or nobody reads this partition; --window 30 tells slow (OK) from "
        "stuck (STALL)"
    )
    assert evaluate([r(0, 4, 12, oldest=44.9)], unread_limit_s=45)[0] is Status.OK
    # Its age not read (the broker did not answer in time): not judged by it.
    assert evaluate([r(0, 4, 12)], unread_limit_s=45)[0] is Status.OK
    # No owner and data loss still say more.
    assert evaluate([r(0, 4, 12, owned=False, oldest=500)], 45)[0] is Status.STOP
    assert evaluate([r(0, 4, 12, low=6, oldest=500)], 45)[0] is Status.DATA_LOSS


def test_a_window_tells_slow_from_stuck_whatever_the_unread_age() -> None:
    moving = [r(0, 4, 40), r(5, 10, 40), r(10, 20, 40, oldest=600)]
    status, why = evaluate(moving, unread_limit_s=45)
    assert (status, why) == (Status.OK, "lag 20, being consumed")  # far behind, catching up
    stuck = [r(0, 4, 12), r(5, 4, 12), r(10, 4, 12, oldest=600)]
    assert evaluate(stuck, unread_limit_s=45)[0] is Status.STALL


def test_severity_and_the_worst_of_several() -> None:
    assert [s.severity for s in (Status.OK, Status.WARN, Status.STALL, Status.DATA_LOSS)] == [
        0,
        1,
        2,
        2,
    ]
    assert worst([Status.OK, Status.WARN, Status.STALL]) is Status.STALL
    assert worst([Status.STOP, Status.DATA_LOSS]) is Status.DATA_LOSS
    assert worst([]) is Status.OK


def failing(error: Exception) -> Callable[[], str]:
    def attempt() -> str:
        raise error

    return attempt


def test_reprocess_retries_what_may_pass_and_gives_up_in_the_end() -> None:
    failures = iter([DatabaseError("deadlock detected"), DatabaseError("server closed")])

    def flaky() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "written"

    quick = Retry(attempts=3, initial_s=0.01)
    assert quick.call(flaky, "writing") == "written"
    with pytest.raises(DatabaseError):
        Retry(attempts=2, initial_s=0.01).call(failing(DatabaseError("down")), "writing")
    with pytest.raises(InvalidError):  # not one that may pass: raised at once
        quick.call(failing(InvalidError("bad")), "writing")
