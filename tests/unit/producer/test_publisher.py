"""The publisher: every spooled chunk reaches Kafka once, in order, whatever the producer does.

On the in-memory broker: a producer that turns fatal is replaced and the
unconfirmed chunks are sent again; a full local queue is waited out; a
refused chunk is sent again from the first unconfirmed one; a broker that
goes away and comes back gets everything; and a restart publishes again only
what the broker never acknowledged -- unless the last run crashed and a
replay window is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from producer.publisher import Publisher
from producer.spool import Spool
from sshtrail.kafka.ports import BrokerEvent, DeliveryError
from tests.support.localbroker import LocalBroker, LocalProducer
from tests.support.waiting import wait_for as wait_until

TOPIC = "sessions"


class Setup:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.broker = LocalBroker()
        self.broker.create_topic(TOPIC, 3)
        self.producers: list[LocalProducer] = []
        self.spool = self._spool()

    def _spool(self) -> Spool:
        spool = Spool(self.folder / "spool", 1 << 16, 0.01)
        spool.open()
        return spool

    def make_producer(self, on_event: Callable[[BrokerEvent], None]) -> LocalProducer:
        producer = self.broker.producer(on_event)
        self.producers.append(producer)
        return producer

    def publisher(self, window: float = 0.0) -> Publisher:
        publisher = Publisher(self.spool, TOPIC, self.make_producer, window)
        publisher.start()
        return publisher

    def restart(self, publisher: Publisher, clean: bool) -> Publisher:
        if clean:
            publisher.stop(5)
            self.spool.close()
        else:  # a crash: the thread and the files are simply left
            publisher._stopping.set()
            publisher._deadline = 0
            publisher._thread.join(5)
        self.spool = self._spool()
        return self.publisher(publisher._window)

    def spool_chunks(self, count: int, start: int = 0) -> list[bytes]:
        values = [f"chunk-{n}".encode() for n in range(start, start + count)]
        for value in values:
            self.spool.append(b"session-1", value)
        return values

    def published(self) -> list[bytes]:
        return [m.value() or b"" for m in self.broker.messages(TOPIC)]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    instance = Setup(tmp_path)
    yield instance
    instance.spool.close()


def test_every_chunk_once_in_order(setup: Setup) -> None:
    publisher = setup.publisher()
    values = setup.spool_chunks(200)
    wait_for(lambda: setup.spool.pending == 0, what="everything acknowledged")
    assert setup.published() == values
    publisher.stop(5)


def test_a_producer_that_turns_fatal_is_replaced_and_nothing_is_lost(setup: Setup) -> None:
    """librdkafka reports a fatal idempotence error through its error callback only
    (confluent-kafka-python #655); the publisher must notice by itself."""
    setup.broker.go_down()  # chunks wait, unconfirmed, in the first producer
    publisher = setup.publisher()
    values = setup.spool_chunks(20)
    wait_for(lambda: publisher.in_flight_bytes > 0, what="chunks handed to the producer")
    setup.producers[0].make_fatal()
    setup.broker.come_back()
    wait_for(lambda: setup.spool.pending == 0, what="everything acknowledged")
    assert publisher.renewals == 1
    assert len(setup.producers) == 2
    assert setup.published() == values  # the first producer delivered nothing
    publisher.stop(5)


def test_a_full_local_queue_is_waited_out(setup: Setup) -> None:
    publisher = setup.publisher()
    for producer in setup.producers:
        producer.max_queued = 3
    values = setup.spool_chunks(100)
    wait_for(lambda: setup.spool.pending == 0, what="everything acknowledged")
    assert setup.published() == values
    publisher.stop(5)


def test_a_refused_chunk_is_sent_again_in_order(setup: Setup) -> None:
    setup.broker.refuse_next(DeliveryError("failed", "Broker: Not enough in-sync replicas"))
    publisher = setup.publisher()
    values = setup.spool_chunks(10)
    wait_for(lambda: setup.spool.pending == 0, what="everything acknowledged")
    published = setup.published()
    assert published[-10:] == values  # after the refusal, everything from it, in order
    assert set(published) == set(values)
    assert publisher.errors == 1
    publisher.stop(5)


def test_a_broker_that_goes_away_gets_everything_when_it_is_back(setup: Setup) -> None:
    publisher = setup.publisher()
    first = setup.spool_chunks(10)
    wait_for(lambda: setup.spool.pending == 0)
    setup.broker.go_down()
    later = setup.spool_chunks(10, start=10)
    time.sleep(0.2)
    assert setup.spool.pending > 0
    setup.broker.come_back()
    wait_for(lambda: setup.spool.pending == 0, what="everything acknowledged")
    assert setup.published() == first + later
    publisher.stop(5)


def test_a_clean_restart_publishes_nothing_again(setup: Setup) -> None:
    """Issue 14.3: every start used to publish the whole recent spool again."""
    publisher = setup.publisher(window=30)
    values = setup.spool_chunks(5)
    wait_for(lambda: setup.spool.pending == 0)
    publisher = setup.restart(publisher, clean=True)
    # A chunk spooled after the restart comes after anything the start sends again:
    # once it is published, a republished window would be there before it.
    marker = setup.spool_chunks(1, start=5)
    wait_for(lambda: marker[0] in setup.published(), what="the chunk after the restart")
    assert setup.published() == values + marker
    publisher.stop(5)


def test_after_a_crash_the_replay_window_is_published_again(setup: Setup) -> None:
    """The embedded broker can lose what it acknowledged when it dies with the gateway:
    after a crash (no clean stop), the window is sent again; consumers deduplicate."""
    publisher = setup.publisher(window=30)
    values = setup.spool_chunks(5)
    wait_for(lambda: setup.spool.pending == 0)
    time.sleep(1.1)  # the acknowledged position is saved to disk at least every 100 ms
    publisher = setup.restart(publisher, clean=False)
    wait_for(lambda: len(setup.published()) == 10, what="the window published again")
    assert setup.published() == values + values
    publisher.stop(5)


def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    wait_until(condition, timeout, what, every=0.005)
