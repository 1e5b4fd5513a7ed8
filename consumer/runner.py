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
when one has moved (:mod:`consumer.resting`).

Offsets that are missing -- the broker deleted them (retention) before the
group read them -- are DATA-LOSS: found by :mod:`consumer.continuity`, then
counted and recorded in the dead-letter topic before anything past them is
committed.

Nothing is committed past what is written: each batch remembers the
assignment epoch of its partitions, and a partition revoked since it was
fetched -- even if it was assigned again -- has its messages dropped and is
not committed (its fetching restarts at the committed offset). Step 2 of the
next batch runs in a helper thread while step 3 of this one waits on the
database. The writers are idempotent on (session id, seq), so re-delivery
changes nothing.

The loop and the handling of a batch are here; where the member stands per
partition, which its steps share, is kept in :mod:`consumer.positions`;
waiting with partitions paused in :mod:`consumer.backoff`; committing in
:mod:`consumer.commits`; the lag gauges in :mod:`consumer.laggauges`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from consumer.backoff import Backoff
from consumer.commits import Commits
from consumer.continuity import Continuity, lost_messages
from consumer.deadletter import DeadLetterLimit, DeadLetterSink, lost_letter
from consumer.isolation import isolate
from consumer.laggauges import LagGauges
from consumer.messages import Batch, Received, Refused, Rejected, sort_messages
from consumer.metrics import ConsumerMetrics
from consumer.positions import Positions
from consumer.resting import Rest
from consumer.writer import Writer, Written
from sshtrail.errors import UnstorableError
from sshtrail.kafka.ports import GroupConsumer, Message
from sshtrail.provenance import Provenance

log = logging.getLogger(__name__)

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
        self._positions = Positions(consumer)
        self._continuity = Continuity(group, self._positions, options.lag_report_s)
        self._commits = Commits(
            group,
            self._positions,
            metrics,
            retry_initial_s=options.retry_initial_s,
            retry_max_s=options.retry_max_s,
        )
        self._rest = Rest(self._positions, options.idle_check_s)
        self._lag = LagGauges(self.topic, self._positions, metrics, options.lag_report_s)
        self._backoff = Backoff(
            group,
            consumer,
            metrics,
            rest=self._rest,
            stop=self._stop,
            while_waiting=self._report_lag,
            retry_initial_s=options.retry_initial_s,
            retry_max_s=options.retry_max_s,
        )

    @property
    def resting(self) -> bool:
        """Caught up, its partitions paused until a log end moves (``idle_check_s``)."""
        return self._rest.resting

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
                if idle and self._rest.resting:
                    wait = self._options.idle_check_s
                messages = self._consumer.consume(self._options.batch_size, wait)
                self._metrics.consumed(len(messages))
                if not messages:
                    self._rest.after_empty_poll(caught_up=idle, paused=self._backoff.paused)
                decoding = self._decode(decoder, messages)
                if pending is not None:
                    self._handle(pending)
                self._commits.commit_again()
                pending = decoding.result() if decoding is not None else None
                if pending is None:  # nothing in hand, nothing new
                    self._passed_by_retention()
                # Work a writer left for later (a session too costly for one batch) is
                # done between batches: a little while messages flow, more when idle.
                budget = BACKGROUND_BUSY_S if pending is not None else BACKGROUND_IDLE_S
                more_work = bool(
                    self._backoff.retrying(partial(self._writer.background, budget), "background")
                )
                if time.monotonic() >= next_housekeeping:
                    settled = frozenset() if self._backoff.paused else self._positions.settled()
                    self._backoff.retrying(
                        partial(self._writer.housekeeping, settled), "housekeeping"
                    )
                    next_housekeeping = time.monotonic() + self._options.housekeeping_s
                self._report_lag(force=not self._rest.resting)
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
        epochs = dict(self._positions.epochs)
        return decoder.submit(sort_messages, messages, epochs, self._options.provenance)

    def _handle(self, batch: Batch) -> None:
        started = time.perf_counter()
        self._drop_stale(batch)
        if not len(batch):
            return
        lost = self._continuity.skipped(batch)
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
                self._backoff.stall(f"dead-letter limit: {problem}")
                return
        if batch.bad or lost:
            letters = [lost_letter(self.topic, gone) for gone in lost] + batch.bad
            if not self._dead_letter(letters):
                return  # stopping with the broker away: commit nothing
            self._metrics.dead_lettered(len(batch.bad))
            self._metrics.lost(lost_messages(lost))
        self._positions.next.update(batch.ends)
        self._commit(batch)
        self._metrics.batch_written(
            len(batch), written.written, written.duplicates, time.perf_counter() - started
        )
        for received in batch.good:
            self._positions.last_published[received.partition] = received.published_at.timestamp()

    def _passed_by_retention(self) -> None:
        """While idle: record the offsets of owned partitions deleted before they were
        read (:meth:`Continuity.check_log_starts`), then commit past them."""
        found = self._continuity.check_log_starts()
        if not found:
            return
        if not self._dead_letter([lost_letter(self.topic, gone) for gone in found]):
            return
        self._metrics.lost(lost_messages(found))
        self._continuity.pass_over(found)

    def _dead_letter(self, letters: list[Rejected]) -> bool:
        """Send ``letters`` and wait for the broker's ack; False if stopped first."""
        sent = self._backoff.retrying(lambda: self._dead_letters.send(letters), "dead-letter")
        return sent is not None

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

        if self._backoff.retrying(keep, "refuse") is None:
            return False
        self._metrics.refused(len(refused))
        return True

    def _write(self, batch: Batch) -> Written | None:
        """Write the batch's chunks; what the database refuses is isolated and quarantined."""

        def fresh() -> list[Received]:
            self._drop_stale(batch)
            return batch.good

        try:
            return self._backoff.retrying(lambda: self._writer.write(fresh()), "write")
        except UnstorableError as exc:
            log.error(
                "%s: the database refused a batch (%s); finding the chunks at fault",
                self.group,
                exc,
            )
        outcome = isolate(fresh(), self._writer, self._backoff.retrying, self.topic)
        if outcome is None:
            return None
        batch.good = outcome.stored
        batch.bad.extend(outcome.rejected)
        self._metrics.quarantined(len(outcome.sessions))
        return outcome.written

    def _drop_stale(self, batch: Batch) -> None:
        stale = batch.stale(self._positions.epochs, self._positions.assigned)
        if stale:
            log.info(
                "%s: dropping what was fetched from partitions %s before they were revoked",
                self.group,
                sorted(stale),
            )
            batch.drop_partitions(stale)

    def _commit(self, batch: Batch) -> None:
        self._drop_stale(batch)
        self._commits.commit(batch.ends)

    # -- rebalances (called from inside consume) -----------------------------------------

    def assigned(self, partitions: list[int]) -> None:
        self._positions.assign(partitions)
        self._continuity.check_soon()  # where the new partitions stand: at once
        # Cooperative and KIP-848 rebalances hand over only what moves: say both.
        log.info(
            "%s: assigned partitions %s, holds %s",
            self.group,
            sorted(partitions),
            sorted(self._positions.assigned),
        )
        # librdkafka keeps a partition's pause across a revoke and a new assignment:
        # set it explicitly, to what the member is doing now. A resting member wakes:
        # where the new partitions stand is read by fetching them.
        self._rest.wake(paused=self._backoff.paused)
        if self._backoff.paused:
            self._consumer.pause(partitions)
        else:
            self._consumer.resume(partitions)

    def revoked(self, partitions: list[int]) -> None:
        self._positions.revoke(partitions)
        self._limit.forget(partitions)
        log.info(
            "%s: partitions %s revoked, holds %s",
            self.group,
            sorted(partitions),
            sorted(self._positions.assigned),
        )

    # -- reporting ---------------------------------------------------------------------

    def _report_lag(self, force: bool = False) -> None:
        """Set the lag gauges (:mod:`consumer.laggauges`), also while the member waits."""
        self._lag.report(fresh=self._backoff.paused or self._rest.resting, force=force)

    def _close(self) -> None:
        self._consumer.close()  # leaves the group: its partitions move at once
        self._dead_letters.close()
        log.info("%s: left the group", self.group)
