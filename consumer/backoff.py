"""Waiting without leaving the group: retries with back-off, and stalls, partitions paused.

While the database or the broker is away (a
:class:`~sshtrail.errors.RetryableError`), or the member has stalled on too
many dead letters, its assigned partitions are paused and the consumer keeps
polling, so the member stays in the group (``max.poll.interval.ms``) and
receives no new messages meanwhile. A message that still arrives (from a
partition assigned during the pause) is put back to be read again later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from consumer.metrics import ConsumerMetrics
from consumer.resting import Rest
from sshtrail.errors import BrokerError, RetryableError
from sshtrail.kafka.ports import GroupConsumer

log = logging.getLogger(__name__)
T = TypeVar("T")


class Backoff:
    """One member's pauses: for a retry, or for good (a stall)."""

    def __init__(
        self,
        group: str,
        consumer: GroupConsumer,
        metrics: ConsumerMetrics,
        *,
        rest: Rest,
        stop: threading.Event,
        while_waiting: Callable[[], None],
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        self.group = group
        self._consumer = consumer
        self._metrics = metrics
        self._rest = rest
        self._stop = stop
        self._while_waiting = while_waiting
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        #: Paused for a retry or a stall (resting pauses too, but is not this).
        self.paused = False

    def retrying(self, attempt: Callable[[], T], what: str) -> T | None:
        """Run ``attempt`` until it succeeds; None if stopped first.

        Between attempts the assigned partitions are paused and the consumer
        keeps polling. Other errors, and a fatal broker error, propagate.
        """
        delay = self._retry_initial_s
        while True:
            try:
                result = attempt()
            except RetryableError as exc:
                if isinstance(exc, BrokerError) and exc.fatal:
                    raise
                self._metrics.retry()
                log.warning("%s: %s failed, retrying in %.1fs: %s", self.group, what, delay, exc)
                self._pause()
                if self._wait(delay):
                    log.warning(
                        "%s: stopping with a batch not written; it will be re-delivered",
                        self.group,
                    )
                    return None
                delay = min(delay * 2, self._retry_max_s)
            else:
                self._resume()
                return result

    def stall(self, why: str) -> None:
        """Stop taking messages until stopped: paused, in the group, committing nothing."""
        self._metrics.stalled(True)
        self._pause()
        while True:
            log.error(
                "%s: STALLED, committing nothing: %s. Fix the cause (docs/operations.md, "
                "'Dead-letter limit') and restart this member.",
                self.group,
                why,
            )
            if self._wait(60.0):
                return

    def _wait(self, seconds: float) -> bool:
        """Poll the paused consumer for ``seconds``; True if asked to stop meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            for message in self._consumer.consume(1, min(left, 0.5)):
                # A partition assigned during the pause may not be paused yet: put
                # the message back so it is read again after the retry.
                partition, offset = message.partition(), message.offset()
                assert partition is not None
                assert offset is not None
                self._consumer.seek(partition, offset)
                self._pause()
            self._while_waiting()
        return self._stop.is_set()

    def _pause(self) -> None:
        self._consumer.pause(self._consumer.assignment())
        self.paused = True

    def _resume(self) -> None:
        if self.paused:
            self._consumer.resume(self._consumer.assignment())
            self.paused = False
            self._rest.resumed()
