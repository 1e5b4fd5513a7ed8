"""Operator locks decided by signing time: copies and out-of-order reads change nothing."""

from __future__ import annotations

import itertools
from pathlib import Path

from producer.locks import Locked, Locks, Stale
from sshtrail import control

SECOND = 1_000_000_000


def lock(at: int, request_id: str = "") -> control.Lock:
    return control.Lock(
        request_id=request_id or f"lock-{at}", at=at, operator="alice", auditor="ann", reason="r"
    )


def unlock(at: int, request_id: str = "") -> control.Unlock:
    return control.Unlock(
        request_id=request_id or f"unlock-{at}", at=at, operator="alice", auditor="ann", reason="r"
    )


def test_a_copy_of_an_old_unlock_does_not_undo_a_later_lock() -> None:
    locks = Locks()
    first_unlock = unlock(2 * SECOND)
    for request in (lock(1 * SECOND), first_unlock, lock(3 * SECOND)):
        assert locks.apply(request) is None
    assert locks.apply(first_unlock) == Stale(3 * SECOND)
    assert locks.locked("alice") == Locked("ann", "r")


def test_the_request_signed_last_wins_in_every_reading_order() -> None:
    history: list[control.Lock | control.Unlock] = [
        lock(1 * SECOND),
        unlock(2 * SECOND),
        lock(3 * SECOND),
        unlock(2 * SECOND),
    ]
    for order in itertools.permutations(history):
        locks = Locks()
        for request in order:
            locks.apply(request)
        assert locks.locked("alice") == Locked("ann", "r"), order


def test_operators_are_ordered_apart() -> None:
    locks = Locks()
    locks.apply(lock(5 * SECOND))
    bob = control.Unlock(request_id="b", at=1, operator="bob", auditor="ann", reason="r")
    assert locks.apply(bob) is None  # older than alice's lock, but bob's own first
    assert locks.locked("bob") is None
    assert locks.locked("alice") is not None


def test_a_restarted_gateway_keeps_the_newest_request_though_the_topic_lost_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "control" / "locks.json"
    before = Locks(path)
    for request in (lock(1 * SECOND), unlock(2 * SECOND), lock(3 * SECOND)):
        before.apply(request)
    before.save()
    assert path.stat().st_mode & 0o777 == 0o600  # the state directory's files are private
    assert path.parent.stat().st_mode & 0o777 == 0o700
    after = Locks(path)  # compaction left only a copy of the old unlock on the topic
    assert after.apply(unlock(2 * SECOND)) == Stale(3 * SECOND)
    assert after.locked("alice") == Locked("ann", "r")


def test_an_unreadable_state_file_leaves_the_topic_to_decide(tmp_path: Path) -> None:
    path = tmp_path / "locks.json"
    path.write_bytes(b"{not json")
    locks = Locks(path)
    assert locks.apply(unlock(2 * SECOND)) is None
    locks.save()
    assert Locks(path).locked("alice") is None
