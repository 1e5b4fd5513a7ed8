"""The status rules of ``sshtrail lag``, reading by reading; and how ``reprocess`` retries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consumer.lagstatus import Reading, Status, evaluate, worst
from consumer.reprocess import Retry
from sshtrail.errors import DatabaseError, InvalidError


def r(at: float, committed: int | None, end: int, low: int = 0, owned: bool = True) -> Reading:
    return Reading(at, committed, low, end, owned)


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
