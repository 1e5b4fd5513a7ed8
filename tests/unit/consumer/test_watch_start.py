"""Where a watcher of a session starts reading: never behind a chunk written while it
looked (the session's first chunk racing the look-up)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from consumer.watch import start_of
from consumer.web.live import LiveHub, Watcher
from sshtrail.errors import BrokerError
from sshtrail.ids import uuid7
from sshtrail.kafka.ports import Message
from sshtrail.settings import Settings


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


class FlakyLog:
    """One empty partition whose log end cannot be read the first time it is asked."""

    def __init__(self) -> None:
        self.failures = 1
        self.assigned: dict[int, int] | None = None

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        if self.failures:
            self.failures -= 1
            raise BrokerError("the broker went away for a moment")
        return 0, 0

    def offset_at(self, topic: str, partition: int, millis: int) -> int | None:
        return None

    def assign(self, topic: str, positions: Mapping[int, int]) -> None:
        self.assigned = dict(positions)


def test_a_watcher_is_not_lost_when_the_broker_fails_while_it_is_taken_in() -> None:
    """Once, a watcher was taken off the list of newcomers before its start was looked
    up; the look-up failed, and the watcher was never taken in (the live view waited
    for good)."""
    hub = LiveHub(Settings())
    watcher = Watcher(uuid7(), asyncio.Queue(), asyncio.new_event_loop())
    hub._joined.append(watcher)
    log = FlakyLog()
    positions: dict[int, int] = {}
    with pytest.raises(BrokerError):
        hub._regroup(log, positions)  # type: ignore[arg-type]
    hub._regroup(log, positions)  # type: ignore[arg-type]  # the run loop tries again
    assert watcher.key == str(watcher.session_id).encode()
    assert log.assigned == {0: 0}
