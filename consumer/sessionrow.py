"""How a ``sessions`` row follows from the chunks stored for it (pure, no I/O).

The store feeds each newly stored chunk to :meth:`SessionRow.add`, in any
order; the row keeps what an auditor filters on and what completeness needs:
metadata from ``start``, what was asked for from the first ``exec`` (a
shell, a command, a subsystem or a forwarded connection), the outcome from
``exit`` and ``end``, the list of missing seqs, the status, and whether the
chain checked out as it arrived.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from sshtrail.chain import end_signature_valid
from sshtrail.events import End, Exec, Exit, Start
from sshtrail.models import SessionStatus
from sshtrail.wire import GENESIS, Chunk

#: Lengths of the bounded text columns (sshtrail/models.py); longer values are cut.
_TEXT_LIMIT = 255
_SIGNAL_LIMIT = 64


@dataclass(slots=True)
class SessionRow:
    """The derived columns of one ``sessions`` row, as the store reads and writes them."""

    id: uuid.UUID
    operator: str | None = None
    client: str | None = None
    target: str | None = None
    target_host: str | None = None
    target_port: int | None = None
    target_user: str | None = None
    gateway: str | None = None
    term: str | None = None
    request: str | None = None
    command: str | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    last_chunk_at: dt.datetime | None = None
    status: str = SessionStatus.ACTIVE
    exit_status: int | None = None
    exit_signal: str | None = None
    end_reason: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    chunk_count: int = 0
    last_seq: int | None = None
    gaps: list[list[int]] = field(default_factory=list)
    #: While chunks arrive in order: the digest of the newest one (the chain's
    #: head); None once they did not, which leaves the check to a full verify.
    final_digest: bytes | None = None
    signature: bytes | None = None
    signing_key: bytes | None = None
    verified: bool | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> SessionRow:
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def complete(self) -> bool:
        """End seen and nothing missing: the chain can be judged."""
        return self.end_reason is not None and not self.gaps

    @property
    def needs_full_verify(self) -> bool:
        """Complete, but the chunks did not arrive in order, so links were not checked."""
        return self.complete and self.verified is None and self.final_digest is None

    def add(self, chunk: Chunk, published_at: dt.datetime) -> None:
        """Take one chunk that was not stored before."""
        self._link(chunk)
        self.chunk_count += 1
        if self.last_chunk_at is None or published_at > self.last_chunk_at:
            self.last_chunk_at = published_at
        for event in chunk.events:
            if isinstance(event, Start):
                self._start(event)
            elif isinstance(event, Exec) and self.request is None:
                self.request = event.mode
                self.command = _cut(event.command.decode("utf-8", "replace"))
            elif isinstance(event, Exit):
                self.exit_status = event.status
                self.exit_signal = _cut(event.signal, _SIGNAL_LIMIT)
            elif isinstance(event, End):
                self._end(chunk, event, published_at)
        self.status = self._status()

    def _link(self, chunk: Chunk) -> None:
        """Track gaps and, while chunks come in order, the hash chain."""
        seq, last = chunk.seq, self.last_seq
        in_order = seq == (0 if last is None else last + 1)
        if in_order and (seq == 0 or self.final_digest is not None):
            expected = GENESIS if seq == 0 else self.final_digest
            if chunk.prev != expected:
                self.verified = False  # a link is broken: stays so
            self.final_digest = chunk.digest
        else:
            self.final_digest = None
        if last is None or seq > last:
            first_missing = 0 if last is None else last + 1
            if seq > first_missing:
                self.gaps.append([first_missing, seq - 1])
            self.last_seq = seq
        else:
            self.gaps = _fill(self.gaps, seq)

    def _start(self, start: Start) -> None:
        self.operator = _cut(start.operator)
        self.client = _cut(start.client)
        self.target = _cut(start.target)
        self.target_host = _cut(start.host)
        self.target_port = start.port
        self.target_user = _cut(start.user)
        self.gateway = _cut(start.gateway)
        self.term = _cut(start.term)
        self.started_at = dt.datetime.fromtimestamp(start.started_at / 1e9, dt.UTC)

    def _end(self, chunk: Chunk, end: End, published_at: dt.datetime) -> None:
        self.end_reason = end.reason
        self.bytes_in, self.bytes_out = end.bytes_in, end.bytes_out
        self.signature, self.signing_key = chunk.signature, end.key
        if self.started_at is not None:
            self.ended_at = self.started_at + dt.timedelta(microseconds=end.t // 1000)
        else:  # the start chunk is not stored yet: publication is the best estimate
            self.ended_at = published_at
        if self.verified is not False and self.final_digest is not None:
            self.verified = end_signature_valid(chunk)

    def _status(self) -> str:
        if self.gaps:
            return SessionStatus.INCOMPLETE
        if self.end_reason is not None:
            return SessionStatus.CLOSED
        return SessionStatus.ACTIVE


def _fill(gaps: list[list[int]], seq: int) -> list[list[int]]:
    """``gaps`` without ``seq``: a range it falls in is split or shrunk."""
    filled: list[list[int]] = []
    for low, high in gaps:
        if low <= seq <= high:
            if low < seq:
                filled.append([low, seq - 1])
            if seq < high:
                filled.append([seq + 1, high])
        else:
            filled.append([low, high])
    return filled


def _cut(text: str | None, limit: int = _TEXT_LIMIT) -> str | None:
    return text[:limit] if text is not None else None
