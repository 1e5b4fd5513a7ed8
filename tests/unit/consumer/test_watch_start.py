"""Where a watcher of a session starts reading: never behind a chunk written while it
looked (the session's first chunk racing the look-up)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from consumer.watch import start_of
from sshtrail.ids import uuid7
from sshtrail.kafka.ports import Message


class RacingLog:
    """One partition, empty until the session's first chunk arrives just after the
    watcher's first question to the broker (whichever that is)."""

    def __init__(self, created_ms: int) -> None:
        self.timestamps: list[int] = []
        self._created_ms = created_ms
        self._asked = 0

    def _asked_once_more(self) -> None:
        self._asked += 1

    def _then_the_chunk_arrives(self) -> None:
        if self._asked == 1 and not self.timestamps:
            self.timestamps.append(self._created_ms + 5)

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        self._asked_once_more()
        end = len(self.timestamps)
        self._then_the_chunk_arrives()
        return 0, end

    def offset_at(self, topic: str, partition: int, millis: int) -> int | None:
        self._asked_once_more()
        found = next((i for i, t in enumerate(self.timestamps) if t >= millis), None)
        self._then_the_chunk_arrives()
        return found

    def assign(self, topic: str, positions: Mapping[int, int]) -> None:
        raise AssertionError("not used")

    def consume(self, count: int, timeout: float) -> Sequence[Message]:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def test_a_first_chunk_written_during_the_look_up_is_read() -> None:
    created = 1_780_000_000_000
    log = RacingLog(created)
    partition, start = start_of(log, "sessions", uuid7(created), 1)
    assert log.timestamps, "the chunk arrived during the look-up"
    assert (partition, start) == (0, 0), "the watcher starts behind its session's first chunk"


def test_nothing_that_recent_waits_at_the_end_of_the_log() -> None:
    created = 1_780_000_000_000
    log = RacingLog(created)
    log.timestamps = [created - 600_000, created - 500_000]  # older sessions only
    assert start_of(log, "sessions", uuid7(created), 1) == (0, 2)
