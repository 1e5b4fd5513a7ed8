"""The group runner both consumer groups share: consume, decode, write, dead-letter, commit.

One loop, the only user of its :class:`~sshtrail.kafka.ports.GroupConsumer`,
in this order for every batch (docs/decisions.md, "Consumer runner"):

1. ``consume(batch_size, batch_wait)`` from the partitions this member owns;
2. sort the messages into chunks and rejects (:mod:`consumer.messages`);
3. write the chunks through the group's :class:`~consumer.writer.Writer` in one
   transaction. A :class:`~sshtrail.errors.RetryableError` (the database is
   away) pauses the assigned partitions and retries with back-off while the
   loop keeps polling, so the group stalls without leaving and without
   skipping. An :class:`~sshtrail.errors.UnstorableError` (the database refuses
   the data) is the message's fault: the chunks at fault are found
   (:mod:`consumer.isolation`), their sessions quarantined, and they join the
   rejects;
4. send the rejects to the dead-letter topic and wait for the broker's ack --
   unless the :class:`~consumer.deadletter.DeadLetterLimit` says too much is
   invalid, in which case the member stalls loudly, committing nothing;
5. commit, synchronously, per partition, the offset one past the batch.

Caught up, on a broker that answers an empty fetch at once instead of holding
it (the embedded one), the member *rests* when ``idle_check_s`` is set: its
partitions paused, it asks for their log ends that often and fetches again
when one has moved (docs/decisions.md, "Idle members").

Offsets that are missing -- the broker deleted them (retention) before the
group read them -- are DATA-LOSS: logged, counted, and recorded in the
dead-letter topic before anything past them is committed
(:meth:`GroupRunner._skipped`).

Nothing is committed past what is written: each batch remembers the
assignment epoch of its partitions, and a partition revoked since it was
fetched -- even if it was assigned again -- has its messages dropped and is
not committed (its fetching restarts at the committed offset). Step 2 of the
next batch runs in a helper thread while step 3 of this one waits on the
database. The writers are idempotent on (session id, seq), so re-delivery
changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from consumer.deadletter import DeadLetterLimit, DeadLetterSink, lost_letter
from consumer.isolation import isolate
from consumer.messages import Batch, Received, Refused, sort_messages
from consumer.metrics import ConsumerMetrics
from consumer.writer import Writer, Written
from sshtrail.errors import (
    BrokerError,
    CommitFailed,
    OffsetsLost,
    RetryableError,
    UnstorableError,
)
from sshtrail.kafka.ports import GroupConsumer, Message
from sshtrail.provenance import Provenance

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds of a writer's left-over work between two batches, and when no batch waits.
BACKGROUND_BUSY_S = 0.2
BACKGROUND_IDLE_S = 1.0
#: Refused chunks of a batch logged one by one; the rest in one line (a flood of
#: forgeries must not flood the log too).
REFUSALS_LOGGED = 10


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    batch_size: int = 2000
    batch_wait_s: float = 0.2
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    #: How often the writer's housekeeping runs (marking silent sessions interrupted).
    housekeeping_s: float = 30.0
    #: How often lag gauges are refreshed while the member waits on the database.
    lag_report_s: float = 5.0
    dead_letter_max_consecutive: int = 100
    dead_letter_max_ratio: float = 0.5
    #: Caught up, pause and look at the log ends this often instead of fetching; 0: never.
    idle_check_s: float = 0.0
    #: Which chunks are taken (``sshtrail/provenance.py``); None: every chunk that decodes.
    provenance: Provenance | None = None


class GroupRunner:
    """Runs one member of a consumer group until :meth:`stop`."""

    def __init__(
        self,
        consumer: GroupConsumer,
        *,
        group: str,
        writer: Writer,
        dead_letters: DeadLetterSink,
        metrics: ConsumerMetrics,
        options: RunnerOptions,
    ) -> None:
        self.group = group
        self.topic = consumer.topic
        self._consumer = consumer
        self._writer = writer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._options = options
        self._limit = DeadLetterLimit(
            options.dead_letter_max_consecutive, options.dead_letter_max_ratio
        )
        self._stop = threading.Event()
        self._assigned: set[int] = set()
        #: Bumped when a partition is revoked: what was fetched before is stale.
        self._epochs: dict[int, int] = {}
        self._committed: dict[int, int | None] = {}
        #: Commits the broker refused (a rebalance in progress), per partition: the
        #: offset and the epoch it was written in. A cooperative rebalance leaves most
        #: partitions where they are, so no new owner re-reads and commits them: the
        #: member commits them again itself, while it still holds them.
        self._refused: dict[int, tuple[int, int]] = {}
        self._commit_again_at = 0.0
        #: Per partition, the offset the next message should have: one past the last
        #: handled. Unknown after an assignment (then: the committed offset).
        self._next: dict[int, int] = {}
        self._last_published: dict[int, float] = {}
        self._paused = False
        #: Caught up and paused until a log end moves (``idle_check_s``).
        self._resting = False
        self._next_idle_check = 0.0
        self._next_lag_report = 0.0
        self._next_retention_check = 0.0

    @property
    def resting(self) -> bool:
        """Caught up, its partitions paused until a log end moves (``idle_check_s``)."""
        return self._resting

    def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group. Safe from any thread."""
        self._stop.set()

    # -- the loop ------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped. Raises :class:`BrokerError` on a fatal Kafka error."""
        self._consumer.subscribe(self)
        log.info("%s: joined the group, topic %s", self.group, self.topic)
        next_housekeeping = time.monotonic()
        # While batch N is written, batch N+1 is already fetched and decoded in a
        # helper thread: decoding is Python work, writing mostly waits on the
        # database. Only this thread touches the consumer; N+1 is written and
        # committed after N, so commits stay in order.
        decoder = ThreadPoolExecutor(1, thread_name_prefix=f"{self.group}-decode")
        pending: Batch | None = None
        more_work = False
        try:
            while not self._stop.is_set():
                idle = pending is None and not more_work
                wait = self._options.batch_wait_s if idle else 0.0
                if idle and self._resting:
                    wait = self._options.idle_check_s
                messages = self._consumer.consume(self._options.batch_size, wait)
                self._metrics.consumed(len(messages))
                if not messages:
                    self._rest_or_wake(caught_up=idle)
                decoding = self._decode(decoder, messages)
                if pending is not None:
                    self._handle(pending)
                self._commit_again()
                pending = decoding.result() if decoding is not None else None
                if pending is None:  # nothing in hand, nothing new
                    self._passed_by_retention()
                # Work a writer left for later (a session too costly for one batch) is
                # done between batches: a little while messages flow, more when idle.
                budget = BACKGROUND_BUSY_S if pending is not None else BACKGROUND_IDLE_S
                more_work = bool(
                    self._retrying(partial(self._writer.background, budget), "background")
                )
                if time.monotonic() >= next_housekeeping:
                    settled = self._settled()
                    self._retrying(partial(self._writer.housekeeping, settled), "housekeeping")
                    next_housekeeping = time.monotonic() + self._options.housekeeping_s
                self._report_lag(force=not self._resting)
            if pending is not None:  # the batch in hand is finished before leaving
                self._handle(pending)
        finally:
            decoder.shutdown(wait=True)
            self._close()

    def _decode(
        self, decoder: ThreadPoolExecutor, messages: Sequence[Message]
    ) -> Future[Batch] | None:
        if not messages:
            return None
        # The epochs now, not when the helper runs: a revoke may come in between.
        return decoder.submit(sort_messages, messages, dict(self._epochs), self._options.provenance)

    def _handle(self, batch: Batch) -> None:
        started = time.perf_counter()
        self._drop_stale(batch)
        if not len(batch):
            return
        lost = self._skipped(batch)
        if batch.refused and not self._refuse(batch.refused):
            return  # stopping while the database is away: nothing committed
        written = self._write(batch)
        if written is None:  # stopping while the database is away: nothing committed
            return
        self._drop_stale(batch)
        lost = [gone for gone in lost if gone.span[0] in batch.ends]
        if batch.bad:
            valid: dict[int, list[int]] = {}
            invalid: dict[int, list[int]] = {}
            for received in batch.good:
                valid.setdefault(received.partition, []).append(received.offset)
            for rejected in batch.bad:
                invalid.setdefault(rejected.partition, []).append(rejected.offset)
            problem = self._limit.check(valid, invalid)
            if problem is not None:
                self._stall(f"dead-letter limit: {problem}")
                return
        if batch.bad or lost:
            letters = [lost_letter(self.topic, gone) for gone in lost] + batch.bad
            if self._retrying(lambda: self._dead_letters.send(letters), "dead-letter") is None:
                return  # stopping with the broker away: commit nothing
            self._metrics.dead_lettered(len(batch.bad))
            self._metrics.lost(sum(end - first for _, first, end in (g.span for g in lost)))
        self._next.update(batch.ends)
        self._commit(batch)
        self._metrics.batch_written(
            len(batch), written.written, written.duplicates, time.perf_counter() - started
        )
        for received in batch.good:
            self._last_published[received.partition] = received.published_at.timestamp()

    def _skipped(self, batch: Batch) -> list[OffsetsLost]:
        """Offsets missing before or between the batch's messages, per partition.

        The sessions topic is neither compacted nor written in transactions, so
        its offsets have no holes: a message further on than the one expected
        means the broker deleted what lay between (retention ran while the group
        was behind, and the client jumped to the first offset left). A message
        below the one expected was fetched before such a jump was recorded
        (:meth:`_passed_by_retention`): it is accounted for, and dropped.
        """
        offsets: dict[int, list[int]] = {}
        for partition, offset in (
            [(m.partition, m.offset) for m in batch.good]
            + [(m.partition, m.offset) for m in batch.bad]
            + [(r.received.partition, r.received.offset) for r in batch.refused]
        ):
            offsets.setdefault(partition, []).append(offset)
        found = []
        for partition, seen in sorted(offsets.items()):
            expected = self._expected(partition)
            if expected is not None and min(seen) < expected:
                batch.drop_before(partition, expected)
            for offset in sorted(seen):
                if expected is not None and offset < expected:
                    continue
                if expected is not None and offset > expected:
                    found.append(self._lost(partition, expected, offset))
                expected = offset + 1
        return found

    def _passed_by_retention(self) -> None:
        """While idle: offsets of an owned partition deleted before they were read.

        With nothing new in a partition, the client never fetches past the hole
        (no message shows it) and the lag would count the deleted messages for
        ever: compare with the partition's first offset instead, record the
        loss, and commit past it.
        """
        now = time.monotonic()
        if now < self._next_retention_check:
            return
        self._next_retention_check = now + self._options.lag_report_s
        found: list[OffsetsLost] = []
        empty: dict[int, int] = {}
        for partition in sorted(self._assigned):
            expected = self._expected(partition)
            marks = self._consumer.watermarks(partition, fresh=True)
            if marks is None:
                continue
            low, high = marks
            if expected is None and low == high:
                # Never committed and nothing to read: commit the position anyway, so
                # that messages retention deletes before this group reads them are
                # found missing, not mistaken for a topic older than the group.
                empty[partition] = high
            elif expected is not None and expected < low:
                found.append(self._lost(partition, expected, low))
        if empty:
            with contextlib.suppress(CommitFailed):  # tried again at the next check
                self._consumer.commit(empty)
                self._committed.update(empty)
        if not found:
            return
        letters = [lost_letter(self.topic, gone) for gone in found]
        if self._retrying(lambda: self._dead_letters.send(letters), "dead-letter") is None:
            return
        self._metrics.lost(sum(end - first for _, first, end in (g.span for g in found)))
        ends = {partition: end for partition, _, end in (g.span for g in found)}
        for partition, end in ends.items():
            with contextlib.suppress(BrokerError):  # not fetching yet: it starts there anyway
                self._consumer.seek(partition, end)
        self._next.update(ends)
        try:
            self._consumer.commit(ends)
        except CommitFailed as exc:
            log.warning("%s: %s; the loss is recorded all the same", self.group, exc)
            return
        self._committed.update(ends)

    def _lost(self, partition: int, first: int, end: int) -> OffsetsLost:
        log.error(
            "%s: DATA-LOSS: partition %d offsets %d..%d were deleted by the broker before this "
            "group read them (retention ran while it was behind). Those recordings are not "
            "in this group's database; the loss is recorded in the dead-letter topic for "
            "'sshtrail completeness' (docs/operations.md, 'DATA-LOSS').",
            self.group,
            partition,
            first,
            end - 1,
        )
        return OffsetsLost(partition, first, end)

    def _expected(self, partition: int) -> int | None:
        """The offset the partition's next message should have; None if not known."""
        if partition in self._next:
            return self._next[partition]
        if self._committed.get(partition) is None:
            with contextlib.suppress(BrokerError):  # away: this batch goes unchecked
                self._committed.update(self._consumer.committed([partition], timeout=5.0))
        # Never committed (a new group): it starts where the topic starts, losing nothing.
        return self._committed.get(partition)

    def _refuse(self, refused: list[Refused]) -> bool:
        """Hand the chunks no trusted gateway signed to the writer (the store keeps them as
        evidence) before anything is committed; whether that was done."""
        for item in refused[:REFUSALS_LOGGED]:
            chunk, received = item.received.chunk, item.received
            log.warning(
                "%s: chunk %d of session %s (partition %d, offset %d) refused: %s",
                self.group,
                chunk.seq,
                chunk.session_id,
                received.partition,
                received.offset,
                item.reason,
            )
        if len(refused) > REFUSALS_LOGGED:
            log.warning(
                "%s: %d more chunks of this batch refused (the metric counts them all)",
                self.group,
                len(refused) - REFUSALS_LOGGED,
            )

        def keep() -> bool:
            self._writer.refuse(refused)
            return True

        if self._retrying(keep, "refuse") is None:
            return False
        self._metrics.refused(len(refused))
        return True

    def _write(self, batch: Batch) -> Written | None:
        """Write the batch's chunks; what the database refuses is isolated and quarantined."""

        def fresh() -> list[Received]:
            self._drop_stale(batch)
            return batch.good

        try:
            return self._retrying(lambda: self._writer.write(fresh()), "write")
        except UnstorableError as exc:
            log.error(
                "%s: the database refused a batch (%s); finding the chunks at fault",
                self.group,
                exc,
            )
        outcome = isolate(fresh(), self._writer, self._retrying, self.topic)
        if outcome is None:
            return None
        batch.good = outcome.stored
        batch.bad.extend(outcome.rejected)
        self._metrics.quarantined(len(outcome.sessions))
        return outcome.written

    def _drop_stale(self, batch: Batch) -> None:
        stale = batch.stale(self._epochs, self._assigned)
        if stale:
            log.info(
                "%s: dropping what was fetched from partitions %s before they were revoked",
                self.group,
                sorted(stale),
            )
            batch.drop_partitions(stale)

    def _commit(self, batch: Batch) -> None:
        self._drop_stale(batch)
        if not batch.ends:
            return
        try:
            self._consumer.commit(batch.ends)
        except CommitFailed as exc:
            if exc.fatal:  # fenced: this client will never commit again
                raise
            # Typically a rebalance in progress. A partition that moves is re-read by
            # its next owner (the idempotent writer ignores what is stored); one that
            # stays is committed again here once the rebalance is over.
            self._metrics.commit_failed()
            for partition, offset in batch.ends.items():
                self._refused[partition] = (offset, self._epochs.get(partition, 0))
            self._commit_again_at = time.monotonic() + self._options.retry_initial_s
            log.warning("%s: %s; committing again while the partitions stay", self.group, exc)
            return
        for partition in batch.ends:
            self._refused.pop(partition, None)
        self._committed.update(batch.ends)

    def _commit_again(self) -> None:
        """Commit what the broker refused, for the partitions still held since."""
        if not self._refused or time.monotonic() < self._commit_again_at:
            return
        held = {
            partition: offset
            for partition, (offset, epoch) in self._refused.items()
            if partition in self._assigned and self._epochs.get(partition, 0) == epoch
        }
        self._refused = {p: self._refused[p] for p in held}
        if not held:
            return
        try:
            self._consumer.commit(held)
        except CommitFailed as exc:
            if exc.fatal:
                raise
            self._commit_again_at = time.monotonic() + self._options.retry_max_s
            log.info("%s: committing again refused too (%s); will retry", self.group, exc)
            return
        self._refused.clear()
        self._committed.update(held)
        log.info("%s: committed partitions %s after the rebalance", self.group, sorted(held))

    # -- waiting -----------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T], what: str) -> T | None:
        """Run ``attempt`` until it succeeds; None if stopped first.

        Between attempts the assigned partitions are paused and the consumer
        keeps polling: the member stays in the group (``max.poll.interval.ms``)
        and receives no new messages meanwhile. Other errors propagate.
        """
        delay = self._options.retry_initial_s
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
                delay = min(delay * 2, self._options.retry_max_s)
            else:
                self._resume()
                return result

    def _stall(self, why: str) -> None:
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
            self._report_lag()
        return self._stop.is_set()

    def _pause(self) -> None:
        self._consumer.pause(self._consumer.assignment())
        self._paused = True

    def _resume(self) -> None:
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
            self._resting = False

    # -- resting while caught up (idle_check_s) ----------------------------------------

    def _rest_or_wake(self, *, caught_up: bool) -> None:
        """After a poll that brought nothing: rest if caught up; resting, wake when a
        log end moved past what this member has read."""
        if not self._options.idle_check_s or self._paused:
            return
        now = time.monotonic()
        if now < self._next_idle_check:
            return
        self._next_idle_check = now + self._options.idle_check_s
        if not self._resting:
            # An empty poll is not proof: librdkafka may still be looking up where a
            # new partition starts. Rest only where the log ends say nothing waits.
            if caught_up and self._assigned and not self._news():
                self._consumer.pause(self._consumer.assignment())
                self._resting = True
        elif self._news():
            self._wake()

    def _settled(self) -> frozenset[int]:
        """Owned partitions written up to their log end, as the broker says now: a
        session on one of them that went silent is silent in Kafka too, not only
        unread here (the store marks such sessions interrupted)."""
        if self._paused:
            return frozenset()
        settled = set()
        for partition in sorted(self._assigned):
            marks = self._consumer.watermarks(partition, fresh=True)
            if marks is None:
                continue
            low, high = marks
            position = self._next.get(partition, self._committed.get(partition))
            if (position is None and low == high) or (position is not None and position >= high):
                settled.add(partition)
        return frozenset(settled)

    def _news(self) -> bool:
        """Whether an owned partition has messages past this member's position; also
        when that cannot be told (the broker is away: fetching will say so)."""
        for partition in sorted(self._assigned):
            marks = self._consumer.watermarks(partition, fresh=True)
            position = self._next.get(partition, self._committed.get(partition))
            if marks is None or position is None or marks[1] > position:
                return True
        return False

    def _wake(self) -> None:
        if self._resting:
            self._resting = False
            if not self._paused:
                self._consumer.resume(self._consumer.assignment())

    # -- rebalances (called from inside consume) -----------------------------------------

    def assigned(self, partitions: list[int]) -> None:
        self._assigned.update(partitions)
        for partition in partitions:
            self._next.pop(partition, None)
        self._next_retention_check = 0.0  # where the new partitions stand: at once
        # Cooperative and KIP-848 rebalances hand over only what moves: say both.
        log.info(
            "%s: assigned partitions %s, holds %s",
            self.group,
            sorted(partitions),
            sorted(self._assigned),
        )
        # librdkafka keeps a partition's pause across a revoke and a new assignment:
        # set it explicitly, to what the member is doing now. A resting member wakes:
        # where the new partitions stand is read by fetching them.
        self._wake()
        if self._paused:
            self._consumer.pause(partitions)
        else:
            self._consumer.resume(partitions)

    def revoked(self, partitions: list[int]) -> None:
        for partition in partitions:
            self._epochs[partition] = self._epochs.get(partition, 0) + 1
            self._committed.pop(partition, None)
            self._next.pop(partition, None)
            self._last_published.pop(partition, None)
        self._assigned.difference_update(partitions)
        self._limit.forget(partitions)
        log.info(
            "%s: partitions %s revoked, holds %s",
            self.group,
            sorted(partitions),
            sorted(self._assigned),
        )

    # -- reporting ---------------------------------------------------------------------

    def _report_lag(self, force: bool = False) -> None:
        """Set the lag gauges of the partitions this member owns, also while it waits."""
        now = time.monotonic()
        if not force and now < self._next_lag_report:
            return
        self._next_lag_report = now + self._options.lag_report_s
        unknown = [p for p in self._assigned if p not in self._committed]
        if unknown:
            with contextlib.suppress(BrokerError):  # away: the gauges say what is known
                self._committed.update(self._consumer.committed(unknown, timeout=2.0))
        messages: dict[int, int] = {}
        seconds: dict[int, float] = {}
        wall = time.time()
        for partition in sorted(self._assigned):
            # Paused, the client fetches nothing and its log-end offsets go stale.
            marks = self._consumer.watermarks(partition, fresh=self._paused or self._resting)
            if marks is None:
                continue
            low, high = marks
            committed = self._committed.get(partition)
            behind = max(high - (committed if committed is not None else low), 0)
            messages[partition] = behind
            # Upper bound: the oldest unread message is newer than the last one read.
            last = self._last_published.get(partition)
            if not behind:
                seconds[partition] = 0.0
            elif last is not None:
                seconds[partition] = max(wall - last, 0.0)
            else:
                seconds[partition] = float("nan")  # behind, and nothing read yet: unknown
        self._metrics.lag(self.topic, messages, seconds)

    def _close(self) -> None:
        self._consumer.close()  # leaves the group: its partitions move at once
        self._dead_letters.close()
        log.info("%s: left the group", self.group)
