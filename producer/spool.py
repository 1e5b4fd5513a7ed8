"""The gateway's durable spool: every chunk is appended here before it is published.

A write-ahead log in segment files of records
``length u32 | crc32 u32 | key length u16 | key | value`` (big-endian), each
at a *position*: its byte offset in the whole log. The publisher reads from
the oldest undelivered position and acknowledges what Kafka confirmed; the
acknowledged position is saved in ``acked`` and fully delivered segments are
deleted (after :attr:`Spool.before_delete`: the gateway saves what it must
know of the sessions still open, ``producer/tails.py``). After a crash
(kill -9 included) the log is read back, a torn last record is cut off, and
everything after ``acked`` is published again -- the consumers drop the
duplicates by (session, seq).

One process at a time: :meth:`Spool.open` takes an exclusive POSIX record lock
(``lockf``) on the directory's ``lock`` file, held until :meth:`Spool.close` or
the process's end, and waits up to :data:`LOCK_WAIT_S` for another process's --
a recorder process spooling what its killed gateway process had handed over,
before it lets go. (A record lock belongs to the process, so a spool opened
again in the same process, as after a crash in the tests, is not held up.)

Appends come from the recorder process (``producer/recorderprocess.py``) or the
chunk writer thread (``producer/chunkwriter.py``) and only ``write(2)`` to the
page cache; a
background thread ``fsync``\\ s at least every ``fsync_interval`` and at once
when a session ends. The newest records (``memory_bytes`` of them) are also
kept in memory, so a publisher that keeps up takes them from there instead of
reading them back from the file and checking their CRC again; records from
before a restart, or from a stretch when Kafka was away, come from the file.

Why one module of more than 400 lines: the segments, their recovery, the
acknowledged position, the records kept in memory and the fsync thread all
guard the same positions under one lock, and the guarantees above hold only
as they interlock (a segment goes only once acknowledged, after the gateway
saved what it needs of it; memory serves only what the file holds from the
same position on). Taken apart, each piece would need the others' lock.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import itertools
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sshtrail.errors import RetryableError

log = logging.getLogger(__name__)

_HEADER: Final = struct.Struct(">IIH")  # payload length, crc32 of payload, key length
_ACKED: Final = struct.Struct(">QI")  # position, crc32 of the position bytes
_PREFIX: Final = "segment-"
_SUFFIX: Final = ".log"
#: Written by a clean close, holding the acknowledged position (see :meth:`Spool.open`).
_STOPPED: Final = "stopped-cleanly"
MAX_RECORD: Final = 4 << 20
_LOCK: Final = "lock"
#: How long :meth:`Spool.open` waits for another process to let the spool go.
LOCK_WAIT_S: Final = 60.0
#: The newest records kept in memory for the publisher (see the module's text).
MEMORY_BYTES: Final = 8 << 20
#: How finely the spool remembers when records were written (for their age).
MARK_EVERY_S: Final = 0.1


class SpoolError(RetryableError):
    """The spool cannot be written (disk full, permissions): recording would be lost."""


@dataclass(frozen=True, slots=True)
class Record:
    position: int
    next_position: int
    key: bytes
    value: bytes


class Spool:
    """Append-only, segmented, crash-safe log of chunks waiting for Kafka."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        fsync_interval: float,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._segments: list[int] = []  # base positions, ascending
        self._read_fds: dict[int, int] = {}
        self._write_fd = -1
        self._lock_fd = -1
        self._write_base = 0
        self.end = 0  # position after the last record
        self.acked = 0
        #: Segments are kept until both acknowledged and before this position, so
        #: the publisher can publish a recent stretch again (see Publisher).
        self.retain_from = 1 << 62
        self._acked_saved = 0
        self._dirty = False
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._flusher: threading.Thread | None = None
        self.on_append: Callable[[], None] = lambda: None
        self._memory_limit = memory_bytes
        self._recent: list[Record] = []  # the newest records, from _recent_head on
        self._recent_head = 0
        self._recent_bytes = 0
        #: Whether the last run closed the spool (rather than crashing); set by open().
        self.stopped_cleanly = False
        #: Whether the last run saved an acknowledged position beyond what is on disk:
        #: records Kafka has were lost from it (a power loss); set by open().
        self.lost_tail = False
        #: Called (on the acknowledging thread) before segments are deleted.
        self.before_delete: Callable[[], None] = lambda: None
        #: Records and bytes appended by this process (the gateway's metrics).
        self.appended_records = 0
        self.appended_bytes = 0
        #: (end position, wall time) of appends, one per :data:`MARK_EVERY_S` at most:
        #: when the oldest record not yet in Kafka was written, give or take that.
        self._marks: deque[tuple[int, float]] = deque()
        self._opened_at, self._opened_end = time.time(), 0

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> None:
        """Recover the log on disk and start the fsync thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self.acked = self._acked_saved = self._load_acked()
        # Left by close(): the last run stopped cleanly, at this acknowledged position.
        # Removed now, so that a crash of this run is not taken for a clean stop.
        marker = self.directory / _STOPPED
        try:
            self.stopped_cleanly = marker.read_bytes() == _ACKED.pack(
                self.acked, zlib.crc32(struct.pack(">Q", self.acked))
            )
            marker.unlink()
        except FileNotFoundError:
            self.stopped_cleanly = False
        bases = sorted(
            int(path.name[len(_PREFIX) : -len(_SUFFIX)])
            for path in self.directory.glob(f"{_PREFIX}*{_SUFFIX}")
        )
        for base in bases:
            self._segments.append(base)
            self._read_fds[base] = os.open(self._path(base), os.O_RDONLY)
        self.end = self._recover_end()
        self.lost_tail = self.acked > self.end
        self.acked = min(self.acked, self.end)  # never beyond what is on disk
        if not self._segments or self.end - self._segments[-1] >= self._segment_bytes:
            self._new_segment(self.end)
        else:
            self._write_base = self._segments[-1]
            self._write_fd = os.open(self._path(self._write_base), os.O_WRONLY | os.O_APPEND)
        self._flusher = threading.Thread(target=self._flush_loop, name="spool-fsync", daemon=True)
        self._flusher.start()
        self._opened_at, self._opened_end = time.time(), self.end
        if self.pending and self._segments:  # left by the last run: as old as its last write
            with contextlib.suppress(OSError):
                self._opened_at = self._path(self._segments[-1]).stat().st_mtime
        if self.pending:
            log.info(
                "spool has %d undelivered bytes from before; publishing them first", self.pending
            )

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            self._sync_locked()
            for fd in [self._write_fd, *self._read_fds.values()]:
                if fd >= 0:
                    os.close(fd)
            self._read_fds.clear()
            self._write_fd = -1
            raw = struct.pack(">Q", self.acked)
            write_atomically(self.directory / _STOPPED, _ACKED.pack(self.acked, zlib.crc32(raw)))
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # lets the lock go
                self._lock_fd = -1

    def _take_lock(self) -> None:
        """Hold the spool for this process (see the module's text); :class:`SpoolError`
        if another still holds it after :data:`LOCK_WAIT_S`."""
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + LOCK_WAIT_S
        told = False
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:  # EAGAIN or EACCES: another process holds it
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SpoolError(
                        f"the spool in {self.directory} is held by another process "
                        f"for more than {LOCK_WAIT_S:.0f} s (another gateway on the "
                        "same state directory?)"
                    ) from None
                if not told:
                    log.info("waiting for another process to let the spool %s go", self.directory)
                    told = True
                time.sleep(0.05)
        self._lock_fd = fd

    # -- writing (the chunk writer thread) ------------------------------

    @property
    def pending(self) -> int:
        """Bytes appended but not yet acknowledged by Kafka."""
        return self.end - self.acked

    def append(self, key: bytes, value: bytes) -> int:
        """Append one record; returns its position. Raises :class:`SpoolError`."""
        length = len(key) + len(value)
        if not key:
            raise SpoolError("a record needs a key")
        if length > MAX_RECORD:
            raise SpoolError(f"record of {length} bytes exceeds {MAX_RECORD}")
        header = _HEADER.pack(length, zlib.crc32(value, zlib.crc32(key)), len(key))
        with self._lock:
            if self.end - self._write_base >= self._segment_bytes:
                self._new_segment(self.end)
            try:
                written = os.writev(self._write_fd, (header, key, value))
            except OSError as exc:
                raise SpoolError(f"cannot write the spool in {self.directory}: {exc}") from exc
            if written != _HEADER.size + length:
                raise SpoolError(f"short write to the spool in {self.directory}")
            position = self.end
            self.end += written
            self._dirty = True
            self._remember(Record(position, self.end, key, value))
            self.appended_records += 1
            self.appended_bytes += written
            now = time.time()
            if not self._marks or now - self._marks[-1][1] >= MARK_EVERY_S:
                self._marks.append((self.end, now))
            else:
                self._marks[-1] = (self.end, self._marks[-1][1])
        self.on_append()
        return position

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest record not yet acknowledged by Kafka was written
        (0 when there is none); for records left by an earlier run, since its last
        segment file changed."""
        with self._lock:
            if self.end == self.acked:
                return 0.0
            while self._marks and self._marks[0][0] <= self.acked:
                self._marks.popleft()
            if self.acked < self._opened_end or not self._marks:
                first = self._opened_at  # left by the last run
            else:
                first = self._marks[0][1]
        return max(time.time() - first, 0.0)

    def sync_soon(self) -> None:
        """Ask the fsync thread to sync now (a session ended)."""
        with self._lock:
            self._wake.notify_all()

    # -- reading and acknowledging (publisher thread) ---------------------

    def read(self, position: int, max_bytes: int) -> list[Record]:
        """Records from ``position`` on, about ``max_bytes`` of them."""
        records: list[Record] = []
        size = 0
        with self._lock:
            end = self.end
            fds = dict(self._read_fds)
            bases = list(self._segments)
            recent = self._recent_from(position, max_bytes)
        if recent:
            return recent
        while position < end and size < max_bytes:
            base = max((b for b in bases if b <= position), default=None)
            if base is None:
                break
            header = os.pread(fds[base], _HEADER.size, position - base)
            if len(header) < _HEADER.size:
                break
            length, crc, key_length = _HEADER.unpack(header)
            payload = os.pread(fds[base], length, position - base + _HEADER.size)
            if not _intact(payload, length, crc, key_length):
                raise SpoolError(f"spool record at {position} is corrupt")
            following = position + _HEADER.size + length
            records.append(Record(position, following, payload[:key_length], payload[key_length:]))
            size += length
            position = following
        return records

    @property
    def oldest(self) -> int:
        """The first position still on disk."""
        with self._lock:
            return self._segments[0] if self._segments else self.end

    def ack(self, position: int) -> None:
        """Everything before ``position`` is in Kafka; drop segments wholly before it
        (and before :attr:`retain_from`), once :attr:`before_delete` has run. Called
        from one thread only (the publisher's)."""
        with self._lock:
            if position <= self.acked:
                return
            self.acked = position
            limit = min(position, self.retain_from)
            done = [
                b
                for b, nxt in zip(self._segments, self._segments[1:], strict=False)
                if nxt <= limit
            ]
        if not done:
            return
        try:
            self.before_delete()  # outside the lock: appends do not wait for it
        except OSError:
            log.exception("spool: segments kept, what must be saved before deleting them was not")
            return
        with self._lock:
            for base in done:
                self._segments.remove(base)
                os.close(self._read_fds.pop(base))
                self._path(base).unlink(missing_ok=True)

    # -- internals ----------------------------------------------------------

    def _remember(self, record: Record) -> None:
        """Keep ``record`` among the newest in memory; forget the oldest beyond the limit."""
        if not self._memory_limit:
            return
        self._recent.append(record)
        self._recent_bytes += len(record.key) + len(record.value)
        while self._recent_bytes > self._memory_limit:
            old = self._recent[self._recent_head]
            self._recent_bytes -= len(old.key) + len(old.value)
            self._recent_head += 1
        if self._recent_head > len(self._recent) // 2:
            del self._recent[: self._recent_head]
            self._recent_head = 0

    def _recent_from(self, position: int, max_bytes: int) -> list[Record]:
        """Records from ``position`` on out of memory; empty unless it starts there."""
        start = bisect.bisect_left(
            self._recent, position, lo=self._recent_head, key=lambda record: record.position
        )
        if start == len(self._recent) or self._recent[start].position != position:
            return []
        records: list[Record] = []
        size = 0
        for record in itertools.islice(self._recent, start, None):
            if size >= max_bytes:
                break
            records.append(record)
            size += len(record.key) + len(record.value)
        return records

    def _path(self, base: int) -> Path:
        return self.directory / f"{_PREFIX}{base:020d}{_SUFFIX}"

    def _new_segment(self, base: int) -> None:
        if self._write_fd >= 0:
            os.fsync(self._write_fd)
            os.close(self._write_fd)
        path = self._path(base)
        self._write_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if base not in self._read_fds:
            self._read_fds[base] = os.open(path, os.O_RDONLY)
            self._segments.append(base)
        self._write_base = base
        fsync_dir(self.directory)

    def _recover_end(self) -> int:
        """Scan the last segment; cut a torn or corrupt tail left by a crash."""
        if not self._segments:
            return self.acked
        base = self._segments[-1]
        fd = self._read_fds[base]
        offset = 0
        size = os.fstat(fd).st_size
        while offset + _HEADER.size <= size:
            length, crc, key_length = _HEADER.unpack(os.pread(fd, _HEADER.size, offset))
            payload = os.pread(fd, length, offset + _HEADER.size)
            if not _intact(payload, length, crc, key_length):
                break
            offset += _HEADER.size + length
        if offset != size:
            log.warning(
                "spool segment %s: cutting %d bytes of a torn record at its end",
                self._path(base).name,
                size - offset,
            )
            os.truncate(self._path(base), offset)
        return base + offset

    def _load_acked(self) -> int:
        try:
            raw = (self.directory / "acked").read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) == _ACKED.size:
            position, crc = _ACKED.unpack(raw)
            if zlib.crc32(raw[:8]) == crc:
                return int(position)
        log.warning("spool acked file is damaged; republishing everything still on disk")
        return 0

    def _save_acked(self) -> None:
        position = self.acked
        if position == self._acked_saved:
            return
        raw = struct.pack(">Q", position)
        write_atomically(self.directory / "acked", _ACKED.pack(position, zlib.crc32(raw)))
        self._acked_saved = position

    def _sync_locked(self) -> None:
        if self._dirty and self._write_fd >= 0:
            os.fsync(self._write_fd)
            self._dirty = False
        self._save_acked()

    def _flush_loop(self) -> None:
        """fsync outside the lock, so appends never wait for the disk."""
        while True:
            with self._lock:
                if self._closing:
                    return
                self._wake.wait(self._fsync_interval)
                fd = os.dup(self._write_fd) if self._dirty and self._write_fd >= 0 else -1
                self._dirty = False
            try:
                if fd >= 0:
                    os.fsync(fd)
                self._save_acked()
            except OSError:
                log.exception("spool fsync failed; retrying")
                with self._lock:
                    self._dirty = True
            finally:
                if fd >= 0:
                    os.close(fd)


def _intact(payload: bytes, length: int, crc: int, key_length: int) -> bool:
    """Whether a record read back is one :meth:`Spool.append` wrote. Every record has
    a key, so zeros (what a file can hold after a power loss) are not a record."""
    return 0 < key_length <= length == len(payload) and zlib.crc32(payload) == crc


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: written and synced beside it, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
