"""The legacy SCP protocol (``scp -O``; ``scp -t`` / ``scp -f`` on the target), read back.

In an upload the operator's client sends (``scp -t PATH`` runs on the
target): ``T`` lines with times (``-p``), ``C<mode> <size> <name>`` and the
file's bytes, ``D<mode> 0 <name>`` / ``E`` around a directory (``-r``); the
target answers each step with a NUL, or ``\\x01``/``\\x02`` and a message.
In a download (``scp -f PATH``) the roles swap. :class:`ScpParser` takes
both streams as recorded and reports each file (and each directory) as a
:class:`~sshtrail.fileops.FileOperation` with its size and SHA-256.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sshtrail.fileops import Capture, ContentEvidence, FileOperation, TransferParseError, text
from sshtrail.shellwords import commands, program_at

MAX_LINE = 8192
MAX_DEPTH = 256


class ScpMode(NamedTuple):
    """How the target runs ``scp``: ``sink`` (``-t``, an upload) or ``source`` (``-f``, a
    download), the path it was given (empty when not known) and its flags."""

    mode: str
    path: str
    flags: frozenset[str]


def scp_mode(command: str) -> ScpMode | None:
    """The ``scp -t``/``-f`` a command line runs, read as a shell reads it
    (:mod:`sshtrail.shellwords`: through ``env``, ``exec``, ``sh -c``, quotes, a path
    such as ``/usr/bin/scp``); None when it runs none."""
    for words in commands(command):
        at = program_at(words, "scp")
        if at is not None and (mode := scp_arguments(words[at + 1 :])) is not None:
            return mode
    return None


def scp_arguments(arguments: Sequence[str]) -> ScpMode | None:
    """What ``scp`` given ``arguments`` does on the target; None unless exactly one of
    ``-t`` and ``-f`` is among them."""
    flags: set[str] = set()
    paths: list[str] = []
    for word in arguments:
        if word.startswith("-") and len(word) > 1 and not paths:
            flags.update(word[1:])
        else:
            paths.append(word)
    if ("t" in flags) == ("f" in flags):
        return None
    return ScpMode(
        "sink" if "t" in flags else "source", paths[-1] if paths else ".", frozenset(flags)
    )


class ScpParser:
    """Reads one legacy SCP exchange; reports each file to ``emit``."""

    def __init__(
        self, mode: ScpMode, emit: Callable[[FileOperation], None], capture: Capture | None = None
    ) -> None:
        self.mode, self._base, self._flags = mode
        self._emit = emit
        self._capture = capture
        self._line = bytearray()
        self._times: dict[str, int] = {}
        self._dirs: list[str] = []
        self._file: FileOperation | None = None  # receiving its bytes
        self._evidence: ContentEvidence | None = None
        self._left = 0  # bytes of the file still to come
        self._status_byte = False  # the sender's NUL after a file's bytes is next
        self._last: FileOperation | None = None  # reported when the next step starts
        self._answer = bytearray()  # an error the receiver is sending, to its newline
        self._answering = False

    def client(self, t: int, data: bytes) -> None:
        """Bytes the operator's client sent."""
        if self.mode == "sink":
            self._sent(t, data)
        else:
            self._answered(t, data)

    def server(self, t: int, data: bytes) -> None:
        """Bytes the target sent back."""
        if self.mode == "source":
            self._sent(t, data)
        else:
            self._answered(t, data)

    def finish(self, t: int) -> None:
        if self._file is not None:
            self._file.status = "cut short"
            self._done(t)
        self._flush()
        if self._line:
            raise TransferParseError("the session ended inside an scp control line")

    # -- the sender's stream --------------------------------------------------------

    def _sent(self, t: int, data: bytes) -> None:
        view = memoryview(data)
        at = 0
        while at < len(view):
            if self._left:
                piece = view[at : at + self._left]
                assert self._evidence is not None
                self._evidence.add(self._evidence.moved, piece)
                self._left -= len(piece)
                at += len(piece)
                if not self._left:
                    self._status_byte = True
                continue
            if self._status_byte:
                self._status_byte = False
                if view[at] != 0 and self._file is not None:
                    self._file.status = "the sender reported an error reading it"
                at += 1
                self._done(t)
                continue
            end = data.find(b"\n", at)
            if end < 0:
                self._line += view[at:]
                if len(self._line) > MAX_LINE:
                    raise TransferParseError(f"an scp control line longer than {MAX_LINE}")
                return
            self._line += view[at:end]
            at = end + 1
            line, self._line = bytes(self._line), bytearray()
            self._directive(t, line)

    def _directive(self, t: int, line: bytes) -> None:
        if not line:
            raise TransferParseError("an empty scp control line")
        kind, rest = line[:1], line[1:]
        if kind in (b"\x01", b"\x02"):  # the sender reports a problem (a file it cannot read)
            self._flush()
            message = text(rest)[:512]
            self._emit(FileOperation(t, "scp", "error", self._where(""), message))
            return
        self._flush()
        if kind == b"T":
            fields = rest.split()
            if len(fields) != 4 or not all(f.isdigit() for f in fields):
                raise TransferParseError(f"a malformed scp time line: {text(line)[:100]!r}")
            self._times = {"mtime": int(fields[0]), "atime": int(fields[2])}
        elif kind in (b"C", b"D"):
            mode, size, name = self._file_line(line)
            detail: dict[str, Any] = {"mode": mode, **self._times}
            self._times = {}
            if kind == b"D":
                if len(self._dirs) >= MAX_DEPTH:
                    raise TransferParseError(f"directories nested deeper than {MAX_DEPTH}")
                path = self._where(name)
                self._dirs.append(name)
                op = "mkdir" if self.mode == "sink" else "list"
                self._emit(FileOperation(t, "scp", op, path, detail=detail))
                return
            op = "upload" if self.mode == "sink" else "download"
            self._file = FileOperation(t, "scp", op, self._where(name), detail=detail)
            self._evidence = ContentEvidence()
            if self._capture is not None:
                self._evidence.copy = self._capture(self._file.path)
            self._left = size
            if not size:
                self._status_byte = True
        elif kind == b"E":
            if not self._dirs:
                raise TransferParseError("an scp directory end outside any directory")
            self._dirs.pop()
        else:
            raise TransferParseError(f"an unknown scp control line: {text(line)[:100]!r}")

    def _file_line(self, line: bytes) -> tuple[str, int, str]:
        fields = line[1:].split(b" ", 2)
        if (
            len(fields) != 3
            or not fields[0].isdigit()
            or not fields[1].isdigit()
            or not fields[2]
            or b"/" in fields[2]
            or fields[2] in (b".", b"..")
        ):
            raise TransferParseError(f"a malformed scp file line: {text(line)[:100]!r}")
        return text(fields[0]), int(fields[1]), text(fields[2])

    def _where(self, name: str) -> str:
        """Where a file named ``name`` (sent at the current depth) is on the target."""
        base = self._base
        if self.mode == "source":  # the target sends PATH itself, or what matched it
            root = posixpath.dirname(base) if not self._dirs else base
            inner = self._dirs[1:] if self._dirs else []
            if not self._dirs and name == posixpath.basename(base):
                return base
            return posixpath.join(root, *inner, name) if name else base
        if not self._dirs and "d" not in self._flags and posixpath.basename(base) == name:
            return base
        return posixpath.join(base, *self._dirs, name) if name else base

    def _done(self, t: int) -> None:
        done, evidence = self._file, self._evidence
        self._file, self._evidence = None, None
        if done is None or evidence is None:
            return
        done.t = t
        done.bytes = evidence.moved
        done.content = evidence.copy
        whole = evidence.whole(None) if done.status == "ok" else None
        if whole is not None:
            done.size, done.sha256 = whole
        elif evidence.moved:
            done.ranges = evidence.ranges()
        self._last = done  # the receiver's answer may still change its status

    def _flush(self) -> None:
        if self._last is not None:
            self._emit(self._last)
            self._last = None

    # -- the receiver's answers -------------------------------------------------------

    def _answered(self, t: int, data: bytes) -> None:
        for byte in data:
            if self._answering:
                if byte == 0x0A:
                    self._answering = False
                    self._refused(t, text(self._answer)[:512] or "refused")
                    self._answer.clear()
                elif len(self._answer) < MAX_LINE:
                    self._answer.append(byte)
            elif byte in (1, 2):
                self._answering = True
            elif byte != 0:
                raise TransferParseError(f"an scp answer byte {byte:#04x}")

    def _refused(self, t: int, message: str) -> None:
        current = self._file
        if current is not None and self._evidence is not None and not self._evidence.moved:
            # Refused before its bytes: the sender sends none and goes on to the next.
            current.status = message
            self._left, self._status_byte = 0, False
            self._done(t)
        elif current is not None:
            current.status = message
        elif self._last is not None:
            self._last.status = message
        else:
            self._emit(FileOperation(t, "scp", "error", self._base, message))
