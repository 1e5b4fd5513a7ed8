"""How a ``sessions`` row follows from the chunks stored for it (pure, no I/O).

The store feeds each newly stored chunk to :meth:`SessionRow.add`, in any
order; the row (a :class:`~sshtrail.models.SessionRecord`, the model's own
dataclass) keeps what an auditor filters on and what completeness needs:
metadata from ``start``, what was asked for from the first ``exec`` (a
shell, a command, a subsystem or a forwarded connection), the bytes each way
(counted from the events until the ``end`` gives the gateway's totals), the
outcome from ``exit`` and ``end``, the list of missing seqs, the status
(``interrupted`` too: sshtrail/interrupted.py), whether the
chain checked out as it arrived, what the masked input looks like, and the flags
an auditor filters on (consumer/sessionflags.py).
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table

from consumer.sessionflags import FlagTracker
from consumer.transfers import PENDING
from sshtrail import interrupted
from sshtrail.chain import end_signature_valid
from sshtrail.events import End, Exec, Exit, Notice, Start, recorded_bytes
from sshtrail.maskedinput import MaskedInputTracker
from sshtrail.models import SessionRecord
from sshtrail.states import (
    MaskedInput,
    PolicyMark,
    SessionFlag,
    SessionStatus,
    joined_flags,
    split_flags,
)
from sshtrail.transferprotocol import by_words, may_carry
from sshtrail.wire import GENESIS, Chunk

SESSIONS = cast(Table, SessionRecord.__table__)
#: Every column of the row, in table order: what the store reads and writes.
COLUMNS = [column.name for column in SESSIONS.columns]
#: Text columns are cut to their length (SessionText cuts again after escaping).
_LIMITS = {
    column.name: column.type.length  # type: ignore[attr-defined]
    for column in SESSIONS.columns
    if getattr(column.type, "length", None)
}


def new_session_values() -> dict[str, Any]:
    """Every column but the id of the row of a session no chunk has been added to yet:
    the model's defaults. Both of the store's write paths make new rows from it."""
    values = SessionRow(SessionRecord(id=uuid.UUID(int=0))).values()
    del values["id"]  # the record is built with a zero id; each caller gives its own
    return values


class SessionRow:
    """The derived columns of one ``sessions`` row, updated chunk by chunk."""

    __slots__ = ("record",)

    def __init__(self, record: SessionRecord) -> None:
        self.record = record

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> SessionRow:
        return cls(SessionRecord(**{name: row[name] for name in COLUMNS}))

    def values(self) -> dict[str, Any]:
        """Every column's value, for an UPDATE."""
        record = self.record
        return {name: getattr(record, name) for name in COLUMNS}

    @property
    def complete(self) -> bool:
        """End seen and nothing missing: the chain can be judged."""
        return self.record.end_reason is not None and not self.record.gaps

    @property
    def needs_full_verify(self) -> bool:
        """Complete, but the chunks did not arrive in order, so links were not checked."""
        record = self.record
        return self.complete and record.verified is None and record.final_digest is None

    def add(self, chunk: Chunk, published_at: dt.datetime) -> None:
        """Take one chunk that was not stored before."""
        record = self.record
        self._link(chunk)
        record.chunk_count += 1
        if record.last_chunk_at is None or published_at > record.last_chunk_at:
            record.last_chunk_at = published_at
        if record.interrupted_at is not None and chunk.end is None and record.end_reason is None:
            # Chunks after the store gave the session up: its mark no longer stands (its
            # last-heard time goes); when it was made is kept, for the record.
            record.ended_at = None
        if record.end_reason is None:  # an end's totals hold every chunk's bytes
            received, sent = recorded_bytes(chunk.events)
            record.bytes_in += received
            record.bytes_out += sent
        tracker = self._masked_tracker()
        flags = FlagTracker.from_state(record.flag_state)
        for event in chunk.events:
            tracker.feed(event)
            flags.feed(event)
            if isinstance(event, Start):
                self._start(event)
            elif isinstance(event, Exec) and record.request is None:
                record.request = event.mode
                record.command = _cut(event.command.decode("utf-8", "replace"), "command")
            elif isinstance(event, Exit):
                record.exit_status = event.status
                record.exit_signal = _cut(event.signal, "exit_signal")
            elif isinstance(event, Notice) and event.code == "policy":
                self._policy(event.text)
            elif isinstance(event, End):
                self._end(chunk, event, published_at)
                if event.reason.startswith("refused: command rejected"):
                    self._policy("reject")
        self._keep_masked(tracker)
        self._keep_flags(flags)
        record.status = self._status()
        if record.transfers is None and self.complete and self._transfers_to_read():
            record.transfers = PENDING  # read by the store's background work

    def _policy(self, decided: str) -> None:
        """A command-policy decision (a ``policy`` notice: ``reject by rule R: LINE``,
        ``review by rule R ...: LINE``, ``warn by rule R: LINE``): the session keeps the
        strongest."""
        if decided.startswith("reject"):
            mark = PolicyMark.REJECTED
        elif decided.startswith("review"):
            mark = PolicyMark.REVIEWED
        else:
            mark = PolicyMark.WARNED
        order = list(PolicyMark)
        now = PolicyMark(self.record.policy) if self.record.policy in order else None
        if now is None or order.index(mark) > order.index(now):
            self.record.policy = mark.value

    def _transfers_to_read(self) -> bool:
        # Not by what it ran alone: that may be wrapped or renamed, so a program's
        # channel the client sent bytes on is read, and its first bytes tell
        # (sshtrail/transferprotocol.py); one it sent nothing on, if its words say so.
        record = self.record
        if not may_carry(record.request):
            return False
        return record.bytes_in > 0 or by_words(record.request, record.command) is not None

    def quarantine(self, reason: str) -> None:
        """Chunks of this session were refused by the database: say so, for good."""
        self.record.quarantine_reason = self.record.quarantine_reason or reason
        self.record.status = self._status()

    def _link(self, chunk: Chunk) -> None:
        """Track gaps and, while chunks come in order, the hash chain."""
        record = self.record
        seq, last = chunk.seq, record.last_seq
        in_order = seq == (0 if last is None else last + 1)
        if in_order and (seq == 0 or record.final_digest is not None):
            expected = GENESIS if seq == 0 else record.final_digest
            if chunk.prev != expected:
                record.verified = False  # a link is broken: stays so
            record.final_digest = chunk.digest
        else:
            record.final_digest = None
        if last is None or seq > last:
            first_missing = 0 if last is None else last + 1
            if seq > first_missing:
                # In place: copying the list for each new gap was quadratic in gaps, and
                # a producer numbering every other seq makes one per chunk.
                record.gaps.append([first_missing, seq - 1])
            record.last_seq = seq
        else:
            record.gaps = _fill(record.gaps, seq)

    def _start(self, start: Start) -> None:
        record = self.record
        record.operator = _cut(start.operator, "operator")
        record.client = _cut(start.client, "client")
        record.target = _cut(start.target, "target")
        record.target_host = _cut(start.host, "target_host")
        record.target_port = start.port
        record.target_user = _cut(start.user, "target_user")
        record.gateway = _cut(start.gateway, "gateway")
        record.term = _cut(start.term, "term")
        record.started_at = dt.datetime.fromtimestamp(start.started_at / 1e9, dt.UTC)

    def _end(self, chunk: Chunk, end: End, published_at: dt.datetime) -> None:
        record = self.record
        record.end_reason = end.reason
        record.bytes_in, record.bytes_out = end.bytes_in, end.bytes_out
        record.signature, record.signing_key = chunk.signature, end.key
        if record.started_at is not None:
            record.ended_at = record.started_at + dt.timedelta(microseconds=end.t // 1000)
        else:  # the start chunk is not stored yet: publication is the best estimate
            record.ended_at = published_at
        if record.verified is not False and record.final_digest is not None:
            record.verified = end_signature_valid(chunk)

    def _masked_tracker(self) -> MaskedInputTracker:
        record = self.record
        return MaskedInputTracker(
            masked_bytes=record.masked_bytes,
            masked_lines=record.masked_lines,
            masked_run=record.masked_run,
            verdict=record.masked_input,
            input_line=record.input_line or "",
            full_screen=record.full_screen,
            reads=record.masked_reads or "",
        )

    def _keep_masked(self, tracker: MaskedInputTracker) -> None:
        record = self.record
        record.masked_bytes, record.masked_lines = tracker.masked_bytes, tracker.masked_lines
        record.masked_run, record.masked_input = tracker.masked_run, tracker.verdict
        record.input_line = tracker.input_line or None
        record.full_screen, record.masked_reads = tracker.full_screen, tracker.reads or None

    def _keep_flags(self, flags: FlagTracker) -> None:
        """Flags found are kept (never taken back): those of the tracker, and
        ``blind-eval`` for input the masked-input mark calls suspicious."""
        record = self.record
        record.flag_state = flags.state()
        found = {*split_flags(record.flags), *flags.found()}
        if record.masked_input == MaskedInput.SUSPICIOUS:
            found.add(SessionFlag.BLIND_EVAL.value)
        record.flags = joined_flags(found)

    def _status(self) -> str:
        record = self.record
        if record.quarantine_reason is not None:
            return SessionStatus.QUARANTINED
        if record.gaps:
            return SessionStatus.INCOMPLETE
        if record.end_reason is not None:
            if record.end_reason.startswith("refused"):
                return SessionStatus.REFUSED
            if interrupted.by_gateway(record.end_reason):
                return SessionStatus.INTERRUPTED
            return SessionStatus.CLOSED
        if interrupted.marked_by_store(record.end_reason, record.interrupted_at, record.ended_at):
            return SessionStatus.INTERRUPTED
        return SessionStatus.ACTIVE


def _fill(gaps: list[list[int]], seq: int) -> list[list[int]]:
    """``gaps`` (sorted, disjoint) without ``seq``: the range it falls in, found by
    bisection, is split or shrunk in place."""
    at = bisect.bisect_right(gaps, seq, key=lambda gap: gap[0]) - 1
    if at < 0 or not gaps[at][0] <= seq <= gaps[at][1]:
        return gaps
    low, high = gaps[at]
    gaps[at : at + 1] = [
        *([[low, seq - 1]] if low < seq else []),
        *([[seq + 1, high]] if seq < high else []),
    ]
    return gaps


def _cut(text: str | None, column: str) -> str | None:
    return text[: _LIMITS[column]] if text is not None else None
