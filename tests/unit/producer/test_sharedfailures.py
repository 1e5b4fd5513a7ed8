"""Failed logins and connections waiting to log in, counted per worker and summed: limits
of the gateway, not of a worker, that may refuse early but never late."""

from __future__ import annotations

import msgspec

from producer.admission import Admission, Refuse
from producer.sharedfailures import (
    BUCKETS,
    SLOT_S,
    WINDOW_S,
    SharedFailures,
    new_salt,
    new_table,
)
from producer.sharedpending import SharedPending, new_cells
from sshtrail.settings import GatewaySettings


def workers(count: int) -> list[SharedFailures]:
    cells, salt = new_table(count), new_salt()
    return [SharedFailures(cells, salt, count, row) for row in range(count)]


def test_failures_on_every_worker_add_up() -> None:
    first, second = workers(2)
    for n in range(3):
        first.add("o" + "alice", 1000.0 + n)
        second.add("o" + "alice", 1000.5 + n)
    assert first.count("oalice", 1003.0) == second.count("oalice", 1003.0) == 6
    assert first.count("obob", 1003.0) == 0


def test_a_failure_counts_for_the_whole_window_at_least_and_one_slot_more_at_most() -> None:
    for at in (1000.0, 1004.9):  # the start and the end of a slot
        (table,) = workers(1)
        table.add("a10.0.0.1", at)
        assert table.count("a10.0.0.1", at + WINDOW_S) == 1
        assert table.count("a10.0.0.1", at + WINDOW_S + SLOT_S) == 0


def test_a_slot_of_long_ago_is_started_again_not_added_to() -> None:
    (table,) = workers(1)
    table.add("oalice", 1000.0)
    table.add("oalice", 1000.0 + 13 * SLOT_S)  # the same slot of the ring, a lap later
    assert table.count("oalice", 1000.0 + 13 * SLOT_S) == 1


def test_a_replaced_worker_keeps_what_its_predecessor_counted() -> None:
    cells, salt = new_table(2), new_salt()
    SharedFailures(cells, salt, 2, 1).add("a192.0.2.1", 1000.0)
    successor = SharedFailures(cells, salt, 2, 1)
    successor.add("a192.0.2.1", 1001.0)
    assert SharedFailures(cells, salt, 2, 0).count("a192.0.2.1", 1002.0) == 2


def test_keys_in_one_bucket_over_count_never_under() -> None:
    (table,) = workers(1)
    keys = [f"a10.0.{n // 256}.{n % 256}" for n in range(2 * BUCKETS)]
    for key in keys:
        table.add(key, 1000.0)
    # More keys than buckets: some share one, and count each other's failures.
    counts = [table.count(key, 1001.0) for key in keys]
    assert min(counts) >= 1
    assert max(counts) > 1
    assert sum(counts) >= len(keys)


def test_admission_of_two_workers_refuses_a_name_guessed_at_through_both() -> None:
    """Three failures allowed per name: two through one worker and one through the
    other are three, as through one process."""
    gw = msgspec.convert({"auth_failures_per_operator": 3}, GatewaySettings)
    now = [1000.0]
    first, second = (Admission(gw, lambda: now[0], failures=t) for t in workers(2))
    first.failed("10.0.0.1", "alice")
    first.failed("10.0.0.2", "alice")
    assert first.attempt("10.0.0.3", "alice", failed_here=0) is None
    assert second.attempt("10.0.0.3", "alice", failed_here=0) is None
    second.failed("10.0.0.3", "alice")
    for gate in (first, second):
        refused = gate.attempt("10.0.0.4", "alice", failed_here=0)
        assert isinstance(refused, Refuse)
        assert refused.kind == "too many failures for this operator"


def test_connections_waiting_to_log_in_are_bounded_across_workers() -> None:
    gw = msgspec.convert(
        {"max_pending_logins": 3, "max_pending_logins_per_address": 2}, GatewaySettings
    )
    cells, salt = new_cells(2), new_salt()
    first, second = (Admission(gw, pending=SharedPending(cells, salt, 2, row)) for row in range(2))
    assert first.connection("a") is None
    assert second.connection("a") is None
    assert isinstance(first.connection("a"), Refuse)  # two from "a", one on each worker
    assert second.connection("b") is None
    assert isinstance(first.connection("c"), Refuse)  # three in all
    second.logged_in_or_gone("a")
    assert first.connection("c") is None
    # Worker 1 died: its connections with it; its successor starts from none.
    SharedPending(cells, salt, 2, 0).zero(1)
    assert first.connection("d") is None
