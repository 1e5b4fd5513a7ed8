"""The spool keeps every chunk across crashes and gives it back in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producer.spool import Spool, SpoolError


def opened(directory: Path, segment_bytes: int = 1 << 16, memory_bytes: int = 0) -> Spool:
    """A spool read back from its files (``memory_bytes=0``) unless told otherwise."""
    spool = Spool(directory, segment_bytes, fsync_interval=0.01, memory_bytes=memory_bytes)
    spool.open()
    return spool


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=1 << 16)
    values = [os.urandom(5000) for _ in range(40)]
    positions = [spool.append(b"key-%d" % (i % 3), value) for i, value in enumerate(values)]
    assert positions == sorted(positions)
    assert len(list(tmp_path.glob("segment-*.log"))) > 1
    records = spool.read(0, 1 << 30)
    assert [r.value for r in records] == values
    assert [r.key for r in records[:3]] == [b"key-0", b"key-1", b"key-2"]
    assert records[-1].next_position == spool.end
    spool.close()


def test_ack_deletes_delivered_segments_and_survives_restart(tmp_path: Path) -> None:
    spool = opened(tmp_path, segment_bytes=1 << 16)
    for _ in range(40):
        spool.append(b"k", os.urandom(5000))
    records = spool.read(0, 1 << 30)
    spool.ack(records[29].next_position)
    assert spool.pending == sum(len(r.value) + 1 + 10 for r in records[30:])
    assert min(int(p.name[8:28]) for p in tmp_path.glob("segment-*.log")) > 0
    spool.close()
    again = opened(tmp_path, segment_bytes=1 << 16)
    assert again.acked == records[29].next_position
    assert [r.value for r in again.read(again.acked, 1 << 30)] == [r.value for r in records[30:]]
    again.close()


def test_a_torn_record_from_a_crash_is_cut_and_writing_goes_on(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(b"k", b"first")
    spool.append(b"k", b"second")
    spool.close()
    [segment] = tmp_path.glob("segment-*.log")
    with segment.open("ab") as handle:
        handle.write(b"\x00\x00\x01\x00garbage")  # a record header cut short by kill -9
    again = opened(tmp_path)
    assert [r.value for r in again.read(0, 1 << 20)] == [b"first", b"second"]
    again.append(b"k", b"third")
    assert [r.value for r in again.read(0, 1 << 20)] == [b"first", b"second", b"third"]
    again.close()


def test_zeros_left_by_a_power_loss_are_not_taken_for_records(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(b"k", b"kept")
    spool.close()
    [segment] = tmp_path.glob("segment-*.log")
    with segment.open("ab") as handle:
        handle.write(bytes(4096))  # blocks allocated, never written
    again = opened(tmp_path)
    assert [r.value for r in again.read(0, 1 << 20)] == [b"kept"]
    assert segment.stat().st_size == 10 + 1 + 4  # the zeros are cut
    again.close()


def test_damaged_acked_file_means_republish_everything(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(b"k", b"v")
    spool.ack(spool.end)
    spool.close()
    (tmp_path / "acked").write_bytes(b"\x01\x02")
    again = opened(tmp_path)
    assert again.acked == 0
    assert [r.value for r in again.read(0, 100)] == [b"v"]
    again.close()


def test_corruption_in_the_middle_is_an_error_not_silence(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    spool.append(b"k", b"aaaa")
    spool.append(b"k", b"bbbb")
    [segment] = tmp_path.glob("segment-*.log")
    data = bytearray(segment.read_bytes())
    data[12] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(SpoolError, match="corrupt"):
        spool.read(0, 100)
    spool.close()


def test_oversized_record_is_refused(tmp_path: Path) -> None:
    spool = opened(tmp_path)
    with pytest.raises(SpoolError, match="exceeds"):
        spool.append(b"k", bytes(5 << 20))
    spool.close()


def test_newest_records_come_from_memory_older_ones_from_the_file(tmp_path: Path) -> None:
    spool = opened(tmp_path, memory_bytes=20_000)
    values = [os.urandom(5000) for _ in range(10)]
    positions = [spool.append(b"key-%d" % i, value) for i, value in enumerate(values)]
    [segment] = tmp_path.glob("segment-*.log")
    segment.write_bytes(b"\xff" * segment.stat().st_size)  # the file can no longer give them
    recent = spool.read(positions[7], 1 << 20)
    assert [(r.key, r.value) for r in recent] == [(b"key-%d" % i, values[i]) for i in (7, 8, 9)]
    assert [r.position for r in recent] == positions[7:]
    assert recent[-1].next_position == spool.end
    assert [r.value for r in spool.read(positions[8], 1)] == [values[8]]  # about max_bytes
    with pytest.raises(SpoolError, match="corrupt"):  # forgotten: read from the file
        spool.read(positions[5], 1 << 20)
    spool.close()


def test_segments_are_deleted_only_after_what_must_be_saved_first_is(tmp_path: Path) -> None:
    """The gateway saves its open sessions' tails before delivered segments go
    (producer/tails.py): if that fails, the segments stay for the next ack."""
    spool = opened(tmp_path, segment_bytes=1 << 16)
    for _ in range(40):
        spool.append(b"k", os.urandom(5000))
    records = spool.read(0, 1 << 30)
    saved: list[int] = []

    def failing() -> None:
        raise OSError(28, "No space left on device")

    spool.before_delete = failing
    spool.ack(records[29].next_position)
    assert spool.oldest == 0
    spool.before_delete = lambda: saved.append(spool.oldest)
    spool.ack(records[30].next_position)
    assert saved == [0]
    assert spool.oldest > 0
    spool.close()
