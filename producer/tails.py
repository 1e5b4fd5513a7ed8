"""The tail of every session's chain the spool holds, for ending those a crash left open.

A gateway killed mid-session (kill -9, a crash, the machine) never writes
those sessions' end chunks. Started again, it finds them here and ends them
itself: a chunk that follows the last one it spooled (next ``seq``, ``prev``
= that chunk's digest), signed, whose end says the gateway stopped
unexpectedly, when the session was last heard from (its last event's ``t``)
and its last seq (:mod:`sshtrail.interrupted`).

What is known of each open session -- the seq, digest and spool position of
its last chunk, the time of its last event, the bytes each way, its start --
is *folded* from the chunks in spool order: by the publisher as it reads
them (before they are produced, so before Kafka can acknowledge them), and
on start from every record still on disk. Segments the spool deletes take
their chunks with them, so before it deletes any, the open sessions' tails
are saved in ``tails`` beside the segments (CRC-checked, replaced
atomically): on start, that file and the records left on disk give every
open session again -- a record at or before the position a saved tail
names is already in it.

A session is ended only when everything about it is known: its first chunk
was folded and no seq is missing since (``whole``), the spool read back
without damage, and the acknowledged position the last run saved is not
beyond what is on disk (records Kafka has would be missing: a power loss).
Otherwise the store group marks it interrupted after its silence
(``consumer.interrupted_after_s``), unsigned.

The end chunks are spooled before the publisher starts, after every chunk
the last run spooled: Kafka gets them after what the spool still had to
publish, and the next fold (this run's, or the next start's) sees them, so
no session is ended twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producer.spool import Record, Spool, SpoolError, fsync_dir, write_atomically
from sshtrail import interrupted
from sshtrail.chain import ChainWriter
from sshtrail.errors import WireError
from sshtrail.events import End, Start, recorded_bytes
from sshtrail.wire import chain_digest, unchecked_body

log = logging.getLogger(__name__)

#: The file holding the open sessions' tails, written before segments are deleted.
FILE: Final = "tails"
_FORMAT: Final = 1


@dataclass(slots=True)
class Tail:
    """What is known of one open session: its chain's tail, and its totals."""

    session_id: uuid.UUID
    position: int  # spool position of the last chunk folded
    seq: int  # that chunk's seq
    digest: bytes  # its chain digest: the next chunk's ``prev``
    t: int  # ns since the session started of its last event: when last heard from
    started_at: int | None  # wall clock of the start, ns since the epoch (chunk 0)
    bytes_in: int
    bytes_out: int
    whole: bool  # every chunk from 0 to ``seq`` folded: the totals are whole

    def last_heard(self) -> dt.datetime | None:
        if self.started_at is None:
            return None
        return dt.datetime.fromtimestamp((self.started_at + self.t) / 1e9, dt.UTC)


class _Saved(msgspec.Struct, array_like=True):
    session_id: bytes
    position: int
    seq: int
    digest: bytes
    t: int
    started_at: int | None
    bytes_in: int
    bytes_out: int
    whole: bool


_saved: Final = msgspec.msgpack.Decoder(tuple[int, list[_Saved]])
_encoder: Final = msgspec.msgpack.Encoder()


class Tails:
    """The open sessions of one spool. Used by one thread at a time: the service
    before the publisher starts, then the publisher's thread."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / FILE
        self.open: dict[uuid.UUID, Tail] = {}
        #: Records before this spool position are folded.
        self.folded_to = 0
        #: Whether the open sessions are known for certain (see the module's text).
        self.certain = True

    # -- start ------------------------------------------------------------------------

    def recover(self, spool: Spool) -> None:
        """What the last run left: the saved tails, then every record on disk."""
        self._load()
        if spool.lost_tail:
            log.warning(
                "spool: Kafka acknowledged records that are not on disk (a power loss?); "
                "sessions left open are not ended by this gateway"
            )
            self.certain = False
        position = spool.oldest
        while position < spool.end:
            try:
                records = spool.read(position, 1 << 20)
            except SpoolError as exc:
                log.warning("spool: %s; sessions left open are not ended by this gateway", exc)
                self.certain = False
                break
            if not records:
                break
            self.fold(records)
            position = records[-1].next_position
        self.folded_to = max(self.folded_to, spool.end)

    def interrupted_ends(
        self, signer: Ed25519PrivateKey, now: dt.datetime
    ) -> list[tuple[uuid.UUID, bytes]]:
        """The signed end chunk of every session the last run left open (session, chunk)."""
        if not self.certain:
            return []
        ends = []
        for tail in self.open.values():
            heard = tail.last_heard()
            if not tail.whole or heard is None:
                log.warning(
                    "session %s was left open, but its first chunks are no longer in the "
                    "spool: not ended here (the store group marks it interrupted)",
                    tail.session_id,
                )
                continue
            writer = ChainWriter(tail.session_id, signer, seq=tail.seq + 1, prev=tail.digest)
            end = End(
                t=tail.t,
                reason=interrupted.gateway_reason(heard, tail.seq, now),
                bytes_in=tail.bytes_in,
                bytes_out=tail.bytes_out,
                chunks=tail.seq + 2,
                key=writer.public_key,
            )
            ends.append((tail.session_id, writer.encode([end])))
        return ends

    # -- running ------------------------------------------------------------------------

    def fold(self, records: Iterable[Record]) -> None:
        """Take in records read from the spool, in order; those folded already are skipped."""
        for record in records:
            if record.position < self.folded_to:
                continue
            self._fold(record)
            self.folded_to = record.next_position

    def save(self) -> None:
        """Write the open sessions' tails (before the spool deletes segments)."""
        saved = [
            _Saved(
                t.session_id.bytes,
                t.position,
                t.seq,
                t.digest,
                t.t,
                t.started_at,
                t.bytes_in,
                t.bytes_out,
                t.whole,
            )
            for t in self.open.values()
        ]
        body = _encoder.encode((_FORMAT, saved))
        write_atomically(self._path, zlib.crc32(body).to_bytes(4, "big") + body)
        fsync_dir(self._path.parent)

    # -- internals ----------------------------------------------------------------------

    def _fold(self, record: Record) -> None:
        # These are chunks this gateway encoded: read without the wire decoder's checks,
        # which would cost as much as encoding them did.
        try:
            session_id, seq, events = unchecked_body(record.value)
        except WireError as exc:
            log.warning("spool record at %d is not a chunk (%s): skipped", record.position, exc)
            return
        tail = self.open.get(session_id)
        if tail is not None and record.position <= tail.position:
            return  # in the saved tail already
        if not events:
            return
        if isinstance(events[-1], End):
            self.open.pop(session_id, None)
            return
        received, sent = recorded_bytes(events)
        if tail is None:
            start = events[0] if isinstance(events[0], Start) else None
            tail = self.open[session_id] = Tail(
                session_id,
                record.position,
                seq,
                b"",
                0,
                start.started_at if start is not None else None,
                0,
                0,
                whole=seq == 0,
            )
        else:
            tail.whole = tail.whole and seq == tail.seq + 1
        tail.position, tail.seq = record.position, seq
        tail.digest = chain_digest(record.value)
        tail.t = max(tail.t, *(event.t for event in events))
        tail.bytes_in += received
        tail.bytes_out += sent

    def _load(self) -> None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return
        try:
            if len(raw) < 4 or zlib.crc32(raw[4:]) != int.from_bytes(raw[:4], "big"):
                raise ValueError("its checksum does not match")
            version, saved = _saved.decode(raw[4:])
            if version != _FORMAT:
                raise ValueError(f"format {version}, not {_FORMAT}")
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning(
                "spool: %s is damaged (%s); sessions whose first chunks are gone from the "
                "spool cannot be ended by this gateway",
                self._path,
                exc,
            )
            return
        for s in saved:
            session_id = uuid.UUID(bytes=s.session_id)
            self.open[session_id] = Tail(
                session_id,
                s.position,
                s.seq,
                s.digest,
                s.t,
                s.started_at,
                s.bytes_in,
                s.bytes_out,
                s.whole,
            )


def end_left_open(
    spool: Spool, tails: Tails, signer: Ed25519PrivateKey, now: dt.datetime
) -> list[uuid.UUID]:
    """On start, before the publisher: take in what the last run left in ``spool`` and
    spool a signed end for every session it left open; the sessions ended."""
    tails.recover(spool)
    ended = []
    for session_id, chunk in tails.interrupted_ends(signer, now):
        try:
            spool.append(str(session_id).encode(), chunk)
        except SpoolError:
            log.exception("session %s: its end cannot be spooled", session_id)
            continue
        ended.append(session_id)
        log.warning(
            "session %s was left open when the gateway stopped unexpectedly: ended now "
            "(status interrupted, signed)",
            session_id,
        )
    if ended:
        spool.sync_soon()
    return ended
