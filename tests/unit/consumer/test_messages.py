"""Sorting fetched messages into chunks and dead letters."""

from __future__ import annotations

from consumer.messages import sort_messages
from tests.support.localbroker import LocalMessage
from tests.support.recordings import recording


def Fetched(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    timestamp: tuple[int, int] = (1, 1_795_000_000_000),
) -> LocalMessage:
    return LocalMessage("sessions", partition, offset, key, value, (), timestamp)


def test_good_and_bad_messages_are_sorted_and_every_offset_counts() -> None:
    sid, messages = recording(chunks=3)
    key = str(sid).encode()
    batch = sort_messages(
        [
            Fetched(0, 10, key, messages[0]),
            Fetched(0, 11, key, b"\x00garbage"),
            Fetched(1, 5, None, None),
            Fetched(0, 12, b"other", messages[1]),
            Fetched(2, 7, key, messages[2], (0, -1)),
        ]
    )
    assert [(r.partition, r.offset, r.chunk.seq) for r in batch.good] == [(0, 10, 0), (2, 7, 2)]
    assert [(r.partition, r.offset) for r in batch.bad] == [(0, 11), (1, 5), (0, 12)]
    assert batch.ends == {0: 13, 1: 6, 2: 8}
    reasons = [r.error.reason for r in batch.bad]
    assert reasons[0].startswith("message of 8 bytes") or "magic" in reasons[0]
    assert reasons[1] == "empty message (no value)"
    assert "is not the chunk's session id" in reasons[2]
    assert str(batch.bad[1].error) == "empty message (no value) (partition=1, offset=5)"
    assert batch.good[0].published_at.year == 2026


def test_dropping_revoked_partitions_keeps_the_rest() -> None:
    sid, messages = recording(chunks=2)
    key = str(sid).encode()
    batch = sort_messages(
        [Fetched(0, 1, key, messages[0]), Fetched(1, 1, key, b"x"), Fetched(2, 1, key, messages[1])]
    )
    batch.drop_partitions([1, 2])
    assert [r.partition for r in batch.good] == [0]
    assert batch.bad == []
    assert batch.ends == {0: 2}
