"""What the index keeps in its backlog of a batch that arrived (``to_keep``)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from consumer.indexbacklog import KEEP_BYTES, to_keep
from sshtrail.wire import Chunk

SESSION = uuid.uuid4()


def chunk(seq: int, size: int) -> Chunk:
    return Chunk(SESSION, seq, b"", (), b"", None, b"x" * size)


def test_a_flood_indexed_as_it_arrives_keeps_its_first_chunk_and_its_tail() -> None:
    arrived = [chunk(seq, 100 << 10) for seq in range(10)]
    kept = [c.seq for c in to_keep(arrived, next_seq=10)]
    assert kept == [0, 8, 9]  # 2 x 100 KiB fit in KEEP_BYTES (256 KiB), 3 would not


def test_chunks_not_indexed_yet_are_all_kept() -> None:
    arrived = [chunk(seq, 100 << 10) for seq in range(5, 12)]
    kept = [c.seq for c in to_keep(arrived, next_seq=9)]
    assert kept == [7, 8, 9, 10, 11]  # 5 and 6 were indexed and are out of the tail


@given(
    sizes=st.lists(st.integers(0, KEEP_BYTES), min_size=1, max_size=30),
    first=st.integers(0, 3),
    indexed=st.integers(0, 40),
)
def test_what_is_kept_is_what_a_trim_after_writing_everything_would_keep(
    sizes: list[int], first: int, indexed: int
) -> None:
    arrived = [chunk(first + i, size) for i, size in enumerate(sizes)]
    next_seq = first + min(indexed, len(sizes))
    done = [c for c in arrived if c.seq < next_seq]
    tail, total = [], 0
    for c in reversed([c for c in done if c.seq > 0]):
        total += len(c.raw)
        if total > KEEP_BYTES:
            break
        tail.append(c.seq)
    expected = sorted({c.seq for c in done if c.seq == 0} | set(tail))
    expected += [c.seq for c in arrived if c.seq >= next_seq]
    assert [c.seq for c in to_keep(arrived, next_seq)] == expected
