"""The web console's live view: one reader on Apache Kafka serving several
watchers of one session, and of several, each from its session's first chunk."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from consumer.web.live import Item, LiveHub
from sshtrail.events import End, Event, Output, Start
from sshtrail.settings import Settings
from sshtrail.wire import decode_chunk
from tests.support.consumers import create_topics
from tests.support.kafka import Broker
from tests.support.recordings import keyed, produce, recording

pytestmark = pytest.mark.integration


def settings_for(servers: str, topic: str) -> Settings:
    return msgspec.convert(
        {"kafka": {"bootstrap_servers": servers, "topic": topic}}, Settings, strict=False
    )


async def everything(queue: asyncio.Queue[Item], timeout: float = 30) -> list[Event]:
    """The events a watcher gets until its session's end."""
    seen: list[Event] = []
    while True:
        item = await asyncio.wait_for(queue.get(), timeout)
        if item is None:
            return seen
        assert not isinstance(item, str), item
        seen += item


def test_watchers_of_one_and_of_several_sessions_share_one_reader(
    broker: Broker, topic_name: str
) -> None:
    create_topics(broker.bootstrap_servers, topic_name, partitions=1)  # all on one partition
    first, first_chunks = recording(6, 300)
    second, second_chunks = recording(4, 200, target="t2")
    produce(broker.bootstrap_servers, topic_name, keyed(first, first_chunks))
    hub = LiveHub(settings_for(broker.bootstrap_servers, topic_name))

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        early = [hub.watch(first, loop), hub.watch(first, loop)]
        got = await asyncio.gather(*(everything(w.queue) for w in early))
        # Another session on the same partition, later: the reader goes back for it
        # while the first one's watchers are gone.
        late = hub.watch(second, loop)
        produce(broker.bootstrap_servers, topic_name, keyed(second, second_chunks))
        again = hub.watch(first, loop)  # history only: it ended before
        got += await asyncio.gather(everything(late.queue), everything(again.queue))
        for events, session, outputs in (
            (got[0], first, 4),
            (got[1], first, 4),
            (got[2], second, 2),
            (got[3], first, 4),
        ):
            assert isinstance(events[0], Start), session
            assert sum(isinstance(e, Output) for e in events) == outputs
            assert isinstance(events[-1], End)
        assert got[0] == got[1] == got[3]

    try:
        asyncio.run(watch())
        assert hub.readers_made == 1  # one reader for all of them
    finally:
        hub.close()


@pytest.mark.xfail(
    strict=False,
    reason="open: in full runs of 2026-12-06 (never alone, nor in 10 loaded runs of its "
    "file alone) the hub's reader sometimes never takes in, within 120 s, a watcher of a "
    "session not yet on the topic; a just-made topic listing no partitions (which ended "
    "the reader's thread) is mended, but the miss came back once after it: not explained",
)
def test_a_watcher_of_a_session_not_yet_published_waits_for_it(
    broker: Broker, topic_name: str
) -> None:
    create_topics(broker.bootstrap_servers, topic_name)
    session, chunks = recording(3, 50)
    hub = LiveHub(settings_for(broker.bootstrap_servers, topic_name))

    async def watch() -> list[Event]:
        watcher = hub.watch(session, asyncio.get_running_loop())
        # Taken in by the reader (its partition known, the reader assigned) before the
        # session exists: the watcher really waits first.
        for _ in range(2400):
            if watcher.key:
                break
            await asyncio.sleep(0.05)
        assert watcher.key == str(session).encode(), "the reader never took the watcher in"
        assert watcher.queue.empty()
        await asyncio.get_running_loop().run_in_executor(
            None, produce, broker.bootstrap_servers, topic_name, keyed(session, chunks)
        )
        return await everything(watcher.queue)

    try:
        events = asyncio.run(watch())
    finally:
        hub.close()
    assert isinstance(events[0], Start)
    assert isinstance(events[-1], End)
    # This session's events, every one, in order: nothing of another, nothing lost.
    assert events == [event for chunk in chunks for event in decode_chunk(chunk).events]
