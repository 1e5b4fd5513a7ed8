"""What a transfer parser reports: file operations, and the evidence of one file's bytes.

Both parsers (``sshtrail/sftp.py``, ``sshtrail/scp.py``) turn a recorded
session's two byte streams into :class:`FileOperation` values, in the order
the server answered them. A file's content evidence is kept by
:class:`ContentEvidence`: the SHA-256 of its bytes while they arrive in order
from offset 0 (pieces that come a little early wait in a bounded buffer),
and the byte ranges that moved, so a partial or out-of-order transfer still
says which parts of the file crossed.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Out-of-order bytes held back, per file, waiting for the gap before them.
REORDER_BYTES = 16 << 20
#: Distinct byte ranges kept per file; beyond, the rest are merged into the last.
MAX_RANGES = 4096


#: Receives a file's bytes as they move: (offset, data). See ``capture`` of the parsers.
Copy = Callable[[int, bytes | memoryview], None]
#: Asked for each file a session opens (by path): where its bytes go, or None.
Capture = Callable[[str], Copy | None]


class TransferParseError(Exception):
    """The stream is not the protocol it should be (malformed, truncated, unsupported)."""


@dataclass(slots=True)
class FileOperation:
    """One thing done to the target's file system, as an auditor sees it."""

    t: int  # ns since the session started: when the server answered
    protocol: str  # "sftp" or "scp"
    op: str  # upload, download, rename, remove, mkdir, rmdir, setstat, symlink ...
    path: str
    status: str = "ok"  # "ok", or what the server answered instead
    path2: str | None = None  # the new name (rename), the link's target (symlink)
    bytes: int = 0  # bytes moved (uploads and downloads)
    size: int | None = None  # the whole file's size, when it moved whole
    sha256: str | None = None  # hex, when the file moved whole and in order
    ranges: str | None = None  # "START-END,..." (END exclusive) when it did not
    detail: dict[str, Any] = field(default_factory=dict)
    #: Where this file's bytes were copied, when the parser was asked to (``capture``).
    content: Copy | None = field(default=None, repr=False, compare=False)


class ContentEvidence:
    """The bytes of one file as they move: a running SHA-256 and the ranges seen."""

    __slots__ = ("_early", "_early_bytes", "_hash", "_next", "_ranges", "broken", "copy", "moved")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._next = 0  # the offset the hash has reached
        self._early: dict[int, bytes] = {}
        self._early_bytes = 0
        self._ranges: list[list[int]] = []  # sorted, merged [start, end)
        self.broken = False  # the hash cannot cover the file (a gap, or too much early)
        self.moved = 0
        self.copy: Copy | None = None  # also give every piece to this, where it belongs

    def add(self, offset: int, data: bytes | memoryview) -> None:
        length = len(data)
        if not length:
            return
        if self.copy is not None:
            self.copy(offset, data)
        self.moved += length
        self._note_range(offset, offset + length)
        if self.broken:
            return
        if offset == self._next:
            self._hash.update(data)
            self._next += length
            while self._early:
                piece = self._early.pop(self._next, None)
                if piece is None:
                    break
                self._early_bytes -= len(piece)
                self._hash.update(piece)
                self._next += len(piece)
        elif offset > self._next and self._early_bytes + length <= REORDER_BYTES:
            if offset in self._early:
                self.broken = True  # the same piece twice: not one pass over the file
                return
            self._early[offset] = bytes(data)
            self._early_bytes += length
        else:  # before what was hashed (re-sent), or too far ahead
            self.broken = True
            self._early.clear()
            self._early_bytes = 0

    def whole(self, end: int | None) -> tuple[int, str] | None:
        """(size, SHA-256) when every byte from 0 to ``end`` (None: to the last byte
        seen) moved once and in order; None otherwise."""
        if self.broken or self._early:
            return None
        if end is not None and end != self._next:
            return None
        return self._next, self._hash.hexdigest()

    def ranges(self) -> str:
        return ",".join(f"{start}-{end}" for start, end in self._ranges)

    def _note_range(self, start: int, end: int) -> None:
        ranges = self._ranges
        if ranges and ranges[-1][1] == start:  # the usual case: right after the last
            ranges[-1][1] = end
            return
        at = bisect.bisect_left(ranges, [start, end])
        ranges.insert(at, [start, end])
        low = max(at - 1, 0)
        merged: list[list[int]] = []
        for pair in ranges[low : at + 2]:
            if merged and pair[0] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], pair[1])
            else:
                merged.append(pair)
        ranges[low : at + 2] = merged
        if len(ranges) > MAX_RANGES:
            ranges[-2][1] = max(ranges[-2][1], ranges[-1][1])
            del ranges[-1]


def text(raw: bytes | bytearray | memoryview) -> str:
    """A path or name from the wire, faithfully: bytes that are not UTF-8 as ``\\xNN``."""
    return bytes(raw).decode("utf-8", "backslashreplace")
