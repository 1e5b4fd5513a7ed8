"""SFTP version 3 (what OpenSSH speaks), read from a recorded session's two streams.

The operator's input is the client's requests, the target's output the
server's replies; :class:`SftpParser` takes both as they were recorded and
reports a :class:`~sshtrail.fileops.FileOperation` for every request once
its answer is known (a file's transfer when its handle is closed). Requests
may be pipelined and answered in any order: they are matched by id.

Bounded whatever the stream: a packet longer than :data:`MAX_PACKET` is an
error (OpenSSH's own limit is 256 KiB), at most :data:`MAX_PENDING`
requests may wait for an answer and :data:`MAX_HANDLES` handles stay open.
A stream that breaks the protocol stops that session's parsing with a
:class:`~sshtrail.fileops.TransferParseError`; what was reported stays, and
the files open and requests waiting then are reported as they stood (their
status says the stream could not be read further).

A request of a type SFTP version 3 does not have is not a broken stream:
OpenSSH's ``sftp-server`` skips it by its length and answers nothing (it
logs "Unknown message"), so it is skipped here too and reported as an
``unknown`` operation naming its type and size; a status answering it, as
another server may send ("operation unsupported"), is taken quietly.

Why one module of about 500 lines: it is one protocol's parser. Cutting the
streams into packets and reading their fields (``_Framer``, ``_Reader``) is a
hundred lines of it; the rest -- requests matched to their replies by id,
handles followed from open to close, and what each request and answer is to
an auditor -- is SFTP version 3's table of requests read over one state (the
requests waiting, the handles open), and is checked against the protocol in
one place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sshtrail.fileops import Capture, ContentEvidence, FileOperation, TransferParseError, text

MAX_PACKET = 1 << 20
MAX_PENDING = 8192
MAX_HANDLES = 4096
MAX_EOFS = 256

# Packet types (draft-ietf-secsh-filexfer-02).
INIT, VERSION = 1, 2
OPEN, CLOSE, READ, WRITE, LSTAT, FSTAT, SETSTAT, FSETSTAT = 3, 4, 5, 6, 7, 8, 9, 10
OPENDIR, READDIR, REMOVE, MKDIR, RMDIR, REALPATH, STAT, RENAME = 11, 12, 13, 14, 15, 16, 17, 18
READLINK, SYMLINK = 19, 20
STATUS, HANDLE, DATA, NAME, ATTRS = 101, 102, 103, 104, 105
EXTENDED, EXTENDED_REPLY = 200, 201

FX_OK, FX_EOF = 0, 1
_STATUS_NAMES = {
    1: "end of file",
    2: "no such file",
    3: "permission denied",
    4: "failure",
    5: "bad message",
    6: "no connection",
    7: "connection lost",
    8: "operation unsupported",
}

# Open flags.
_READ, _WRITE, _APPEND, _CREAT, _TRUNC, _EXCL = 1, 2, 4, 8, 16, 32
_FLAG_NAMES = (
    (_READ, "read"),
    (_WRITE, "write"),
    (_APPEND, "append"),
    (_CREAT, "create"),
    (_TRUNC, "truncate"),
    (_EXCL, "exclusive"),
)

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

_PATH_REQUESTS = {
    LSTAT: "stat",
    STAT: "stat",
    REMOVE: "remove",
    RMDIR: "rmdir",
    REALPATH: "realpath",
    READLINK: "readlink",
}
#: Request types of SFTP version 3; anything else is skipped.
_KNOWN_REQUESTS = frozenset(range(OPEN, SYMLINK + 1)) | {EXTENDED}

#: Extensions taking (path, path): what they are to an auditor.
_TWO_PATHS = {
    "posix-rename@openssh.com": "rename",
    "hardlink@openssh.com": "hardlink",
}
#: Extensions taking (path): what they are to an auditor.
_ONE_PATH = {
    "statvfs@openssh.com": "statvfs",
    "expand-path@openssh.com": "realpath",
    "home-directory": "realpath",
}
#: Extensions about a handle, or about nothing in particular: answered, not reported.
_QUIET = {"limits@openssh.com", "fstatvfs@openssh.com", "users-groups-by-id@openssh.com"}


class _Reader:
    """Fields of one packet, in order; a short packet is a TransferParseError."""

    __slots__ = ("_at", "_data")

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._at = 0

    @property
    def size(self) -> int:
        return len(self._data)

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def string(self) -> memoryview:
        return self._take(self.u32())

    def attrs(self) -> dict[str, Any]:
        flags = self.u32()
        found: dict[str, Any] = {}
        if flags & 0x1:
            found["size"] = self.u64()
        if flags & 0x2:
            found["uid"], found["gid"] = self.u32(), self.u32()
        if flags & 0x4:
            found["mode"] = f"{self.u32() & 0o7777:04o}"
        if flags & 0x8:
            found["atime"], found["mtime"] = self.u32(), self.u32()
        if flags & 0x80000000:
            for _ in range(self.u32()):
                found.setdefault("extended", []).append(text(self.string())[:256])
                self.string()
        return found

    def _take(self, count: int) -> memoryview:
        end = self._at + count
        if end > len(self._data):
            raise TransferParseError("a packet ends inside one of its fields")
        piece = self._data[self._at : end]
        self._at = end
        return piece


@dataclass(slots=True)
class _Request:
    t: int
    kind: int
    path: str = ""
    path2: str | None = None
    op: str = ""
    handle: bytes = b""
    offset: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Open:
    """A handle the server gave out: a file or a directory listing."""

    path: str
    flags: int
    t: int
    directory: bool = False
    evidence: ContentEvidence = field(default_factory=ContentEvidence)
    reads: int = 0
    writes: int = 0
    failed: int = 0  # reads or writes the server refused
    #: Offsets of reads answered "end of file" (a few: pipelined reads past the end).
    eofs: set[int] = field(default_factory=set)
    entries: int = 0  # names listed (directories)


class _Framer:
    """Cuts one direction's bytes into packets."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def packets(self, data: bytes) -> list[memoryview]:
        buffer = self._buffer
        buffer += data
        found: list[memoryview] = []
        at = 0
        view = memoryview(buffer)
        while len(buffer) - at >= 4:
            length = int(_U32.unpack_from(buffer, at)[0])
            if length < 1 or length > MAX_PACKET:
                view.release()
                raise TransferParseError(f"a packet of {length} bytes (at most {MAX_PACKET})")
            if len(buffer) - at - 4 < length:
                break
            found.append(memoryview(bytes(view[at + 4 : at + 4 + length])))
            at += 4 + length
        view.release()
        if at:
            del buffer[:at]
        return found

    @property
    def leftover(self) -> int:
        return len(self._buffer)


class SftpParser:
    """Reads SFTP requests and replies; reports each operation to ``emit``."""

    def __init__(
        self, emit: Callable[[FileOperation], None], capture: Capture | None = None
    ) -> None:
        self._emit = emit
        self._capture = capture
        self._requests = _Framer()
        self._replies = _Framer()
        self._pending: dict[int, _Request] = {}
        self._handles: dict[bytes, _Open] = {}
        #: Ids of skipped requests of unknown types, oldest first (a server may answer).
        self._skipped: dict[int, None] = {}
        self.version: int | None = None

    def client(self, t: int, data: bytes) -> None:
        """Bytes the operator's client sent (requests)."""
        try:
            for packet in self._requests.packets(data):
                self._request(t, _Reader(packet))
        except TransferParseError as exc:
            self._abandon(t, exc)
            raise

    def server(self, t: int, data: bytes) -> None:
        """Bytes the target sent back (replies)."""
        try:
            for packet in self._replies.packets(data):
                self._reply(t, _Reader(packet))
        except TransferParseError as exc:
            self._abandon(t, exc)
            raise

    def _abandon(self, t: int, error: TransferParseError) -> None:
        """The stream cannot be followed past here: report the files open and the
        requests waiting as they stand, so nothing understood before is lost."""
        status = f"unknown: the stream could not be read further ({error})"[:512]
        self._unfinished(t, status, status)

    def _unfinished(self, t: int, open_status: str, waiting_status: str) -> None:
        """Report every handle still open and every request still waiting."""
        for handle, opened in list(self._handles.items()):
            self._close(t, handle, opened, open_status)
        self._handles.clear()
        for request in self._pending.values():
            if request.kind not in (READ, WRITE, READDIR, CLOSE) and request.op:
                self._report(t, request, waiting_status)
        self._pending.clear()

    def finish(self, t: int) -> None:
        """The session ended: report what was never closed or never answered."""
        self._unfinished(t, "never closed", "never answered")
        if self._requests.leftover or self._replies.leftover:
            raise TransferParseError("the session ended inside a packet")

    # -- requests -------------------------------------------------------------

    def _request(self, t: int, packet: _Reader) -> None:
        kind = packet.u8()
        if kind == INIT:
            version = packet.u32()
            if version != 3:
                raise TransferParseError(f"the client speaks SFTP version {version}, not 3")
            return
        if self.version is None:
            raise TransferParseError(f"request {kind} before the version was agreed")
        if kind not in _KNOWN_REQUESTS:
            self._skip(t, kind, packet)
            return
        ident = packet.u32()
        request = self._describe(t, kind, packet)
        if request is None:
            return
        if len(self._pending) >= MAX_PENDING and ident not in self._pending:
            raise TransferParseError(f"more than {MAX_PENDING} requests wait for an answer")
        self._pending[ident] = request

    def _skip(self, t: int, kind: int, packet: _Reader) -> None:
        """A request of a type SFTP v3 does not have: reported, skipped by its length."""
        size = packet.size
        if size >= 5:
            if len(self._skipped) >= MAX_PENDING:
                del self._skipped[next(iter(self._skipped))]
            self._skipped[packet.u32()] = None
        status = f"unknown packet type {kind}, {size} byte{'' if size == 1 else 's'}: skipped"
        detail = {"packet_type": kind, "packet_bytes": size}
        self._emit(FileOperation(t, "sftp", "unknown", "", status, detail=detail))

    def _describe(self, t: int, kind: int, packet: _Reader) -> _Request | None:
        if kind in _PATH_REQUESTS:
            return _Request(t, kind, text(packet.string()), op=_PATH_REQUESTS[kind])
        if kind == OPEN:
            path, flags = text(packet.string()), packet.u32()
            return _Request(t, kind, path, detail={"flags": flags, **packet.attrs()})
        if kind == OPENDIR:
            return _Request(t, kind, text(packet.string()))
        if kind in (CLOSE, READDIR, FSTAT, READ, WRITE, FSETSTAT):
            return self._on_handle(t, kind, bytes(packet.string()), packet)
        if kind == SETSTAT:
            path = text(packet.string())
            return _Request(t, kind, path, op="setstat", detail=packet.attrs())
        if kind == MKDIR:
            path = text(packet.string())
            return _Request(t, kind, path, op="mkdir", detail=packet.attrs())
        if kind == RENAME:
            old, new = text(packet.string()), text(packet.string())
            return _Request(t, kind, old, new, op="rename")
        if kind == SYMLINK:
            # OpenSSH sends the link's target first, then the link's own path.
            target, link = text(packet.string()), text(packet.string())
            return _Request(t, kind, link, target, op="symlink")
        assert kind == EXTENDED, kind  # _KNOWN_REQUESTS lets in nothing else
        return self._extended(t, packet)

    def _on_handle(self, t: int, kind: int, handle: bytes, packet: _Reader) -> _Request:
        if kind == READ:
            return _Request(t, kind, handle=handle, offset=packet.u64())
        if kind == WRITE:
            offset, data = packet.u64(), packet.string()
            opened = self._handles.get(handle)
            if opened is not None:
                opened.writes += 1
                opened.evidence.add(offset, data)
            return _Request(t, kind, handle=handle, offset=offset)
        if kind == FSETSTAT:
            return _Request(t, kind, handle=handle, op="setstat", detail=packet.attrs())
        return _Request(t, kind, handle=handle, op="stat" if kind == FSTAT else "")

    def _extended(self, t: int, packet: _Reader) -> _Request | None:
        name = text(packet.string())
        if name in _TWO_PATHS:
            old, new = text(packet.string()), text(packet.string())
            return _Request(t, EXTENDED, old, new, op=_TWO_PATHS[name])
        if name in _ONE_PATH:
            return _Request(t, EXTENDED, text(packet.string()), op=_ONE_PATH[name])
        if name == "lsetstat@openssh.com":
            path = text(packet.string())
            return _Request(t, EXTENDED, path, op="setstat", detail=packet.attrs())
        if name == "fsync@openssh.com":
            return _Request(t, EXTENDED, handle=bytes(packet.string()), op="fsync")
        if name == "copy-data":
            source, offset, length = bytes(packet.string()), packet.u64(), packet.u64()
            destination, at = bytes(packet.string()), packet.u64()
            detail = {"offset": offset, "length": length, "to_offset": at}
            request = _Request(t, EXTENDED, handle=source, op="copy", detail=detail)
            request.path2 = self._path_of(destination)
            return request
        if name in _QUIET:
            return _Request(t, EXTENDED)
        return _Request(t, EXTENDED, op="extension", detail={"name": name[:256]})

    # -- replies --------------------------------------------------------------

    def _reply(self, t: int, packet: _Reader) -> None:
        kind = packet.u8()
        if kind == VERSION:
            self.version = packet.u32()
            if self.version != 3:
                raise TransferParseError(f"the server speaks SFTP version {self.version}, not 3")
            return
        ident = packet.u32()
        request = self._pending.pop(ident, None)
        if request is None and kind == STATUS and ident in self._skipped:
            del self._skipped[ident]  # the answer to a skipped request: reported already
            return
        if request is None:
            raise TransferParseError(f"a reply to request {ident}, which is not waiting")
        if kind == STATUS:
            code = packet.u32()
            message = text(packet.string())[:512]
            self._status(t, request, code, message)
        elif kind == HANDLE:
            self._opened(request, bytes(packet.string()))
        elif kind == DATA:
            self._data(request, packet.string())
        elif kind == NAME:
            self._names(t, request, packet)
        elif kind in (ATTRS, EXTENDED_REPLY):
            if request.op:
                self._report(t, request, "ok")
        else:
            raise TransferParseError(f"unknown reply type {kind}")

    def _names(self, t: int, request: _Request, packet: _Reader) -> None:
        count = packet.u32()
        opened = self._handles.get(request.handle) if request.kind == READDIR else None
        if opened is not None:
            opened.entries += count
        elif request.op:
            if count >= 1 and request.op == "realpath":
                request.detail["resolved"] = text(packet.string())[:4096]
            self._report(t, request, "ok")

    def _status(self, t: int, request: _Request, code: int, message: str) -> None:
        answer = "ok" if code == FX_OK else _STATUS_NAMES.get(code, f"status {code}")
        if message and code != FX_OK:
            answer = f"{answer}: {message}"
        opened = self._handles.get(request.handle) if request.handle else None
        if request.kind == CLOSE:
            if opened is not None:
                del self._handles[request.handle]
                self._close(t, request.handle, opened, answer)
        elif request.kind in (READ, READDIR):
            if opened is not None and code == FX_EOF:
                if request.kind == READ and len(opened.eofs) < MAX_EOFS:
                    opened.eofs.add(request.offset)
            elif opened is not None:
                opened.failed += 1
        elif request.kind == WRITE:
            if opened is not None and code != FX_OK:
                opened.failed += 1
        elif request.kind in (OPEN, OPENDIR):  # refused: reported now, no handle follows
            request.op = "open" if request.kind == OPEN else "list"
            self._report(t, request, answer)
        elif request.op:
            self._report(t, request, answer)

    def _opened(self, request: _Request, handle: bytes) -> None:
        if request.kind not in (OPEN, OPENDIR):
            raise TransferParseError("a handle in answer to a request that opens nothing")
        if len(self._handles) >= MAX_HANDLES and handle not in self._handles:
            raise TransferParseError(f"more than {MAX_HANDLES} handles open at once")
        flags = int(request.detail.get("flags", 0))
        directory = request.kind == OPENDIR
        opened = _Open(request.path, flags, request.t, directory)
        if self._capture is not None and not directory:
            opened.evidence.copy = self._capture(request.path)
        self._handles[handle] = opened

    def _data(self, request: _Request, data: memoryview) -> None:
        opened = self._handles.get(request.handle)
        if request.kind != READ:
            raise TransferParseError("data in answer to a request that reads nothing")
        if opened is not None:
            opened.reads += 1
            opened.evidence.add(request.offset, data)

    def _path_of(self, handle: bytes) -> str | None:
        opened = self._handles.get(handle)
        return opened.path if opened is not None else None

    def _report(self, t: int, request: _Request, status: str) -> None:
        path = request.path or self._path_of(request.handle) or ""
        detail = request.detail
        if "flags" in detail:
            detail = {**detail, "flags": _flag_names(int(detail["flags"]))}
        self._emit(FileOperation(t, "sftp", request.op, path, status, request.path2, detail=detail))

    def _close(self, t: int, handle: bytes, opened: _Open, status: str) -> None:
        if opened.directory:
            listed = {"entries": opened.entries}
            self._emit(FileOperation(t, "sftp", "list", opened.path, status, detail=listed))
            return
        evidence = opened.evidence
        detail: dict[str, Any] = {"flags": _flag_names(opened.flags)}
        if opened.failed:
            detail["refused"] = opened.failed
        op, whole = _kind_of(opened)
        done = FileOperation(
            t, "sftp", op, opened.path, status, bytes=evidence.moved, detail=detail
        )
        done.content = evidence.copy
        if whole is not None and not opened.failed:
            done.size, done.sha256 = whole
        elif evidence.moved:
            done.ranges = evidence.ranges()
        self._emit(done)


def _kind_of(opened: _Open) -> tuple[str, tuple[int, str] | None]:
    """What an open file was to the auditor, and (size, SHA-256) if it moved whole."""
    evidence = opened.evidence
    if opened.writes and opened.reads:
        return "read-write", None
    if opened.writes or (not opened.reads and opened.flags & _WRITE):
        # Written, or opened to be written: an empty file copied up writes nothing
        # (scp sets its size with setstat instead of opening it with "truncate").
        return "upload", evidence.whole(None)
    if opened.reads or (opened.flags & _READ and 0 in opened.eofs):
        # Whole when the bytes moved in one run from 0 and a read right after the
        # last of them was answered "end of file" (OpenSSH's sftp asks for the rest
        # of a short read, so it always makes that read).
        whole = evidence.whole(None)
        return "download", whole if whole is not None and whole[0] in opened.eofs else None
    return "open", None


def _flag_names(flags: int) -> str:
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"
