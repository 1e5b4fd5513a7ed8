"""The file operations of a session's SFTP or SCP channel, read as its chunks arrive.

The store group reads a transfer once the session has ended (``consumer/transfers.py``,
over :mod:`sshtrail.filetransfers`); the alert group cannot wait for the end, so this
follows the channel live with the same parsers. The protocol is told as
:mod:`sshtrail.transferprotocol` tells it: the channel's bytes are held back (at most
:data:`HOLD_BYTES`) until their first bytes say SFTP or SCP, or can no longer, or the
session ends; then the words of its request decide, and what was held goes through the
parser, and everything after it as it comes. Bytes a parser cannot follow end the
watch (what it understood before is reported). A session read from mid-way (its first
chunks not seen) has no request, so nothing is followed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from sshtrail.events import End, Event, Exec, Input, Output
from sshtrail.fileops import FileOperation, TransferParseError, text
from sshtrail.filetransfers import Parser, parser_for
from sshtrail.transferprotocol import SNIFF_BYTES, by_bytes, by_words, may_carry

#: Bytes each way that tell an SCP control line from what is not one (``T`` and two
#: times, ``C0644 SIZE``): past this many each way, the first bytes have said what
#: they can.
ENOUGH_BYTES = 64
#: Bytes held back, at most, before the protocol is decided anyway.
HOLD_BYTES = 2 * SNIFF_BYTES


class TransferWatch:
    """One session's channel, followed for file operations (see the module's text)."""

    def __init__(self) -> None:
        self._request: str | None = None
        self._command = ""
        self._held: list[Input | Output] | None = None  # None: not (or no longer) waiting
        self._held_bytes = 0
        self._client = bytearray()
        self._server = bytearray()
        self._parser: Parser | None = None
        self._found: list[FileOperation] = []

    def read(self, events: Iterable[Event]) -> list[FileOperation]:
        """The file operations the server answered in ``events`` (one chunk's, in order)."""
        for event in events:
            if isinstance(event, Exec):
                self._requested(event)
            elif isinstance(event, Input | Output):
                if self._parser is not None:
                    self._feed(event)
                elif self._held is not None:
                    self._hold(event)
            elif isinstance(event, End):
                if self._held is not None:
                    self._decide(ended=True)
                if self._parser is not None:
                    self._finish(event.t)
        found = self._found[:]
        self._found.clear()  # the parser holds on to the list
        return found

    def _requested(self, event: Exec) -> None:
        if self._request is None and may_carry(event.mode):
            self._request, self._command = event.mode, text(event.command)
            self._held = []
        elif self._request is None:
            self._request = event.mode  # a shell or a forwarded connection: nothing to follow

    def _hold(self, event: Input | Output) -> None:
        assert self._held is not None
        if isinstance(event, Output) and event.stderr:
            return
        self._held.append(event)
        self._held_bytes += len(event.data)
        sniffed = self._client if isinstance(event, Input) else self._server
        sniffed += event.data[: SNIFF_BYTES - len(sniffed)]
        told = by_bytes(bytes(self._client), bytes(self._server), False, self._command)
        said_all = len(self._client) >= ENOUGH_BYTES and len(self._server) >= ENOUGH_BYTES
        if told is not None or said_all or self._held_bytes >= HOLD_BYTES:
            self._decide(ended=False)

    def _decide(self, *, ended: bool) -> None:
        held, self._held = self._held or [], None
        client, server = bytes(self._client), bytes(self._server)
        self._client, self._server = bytearray(), bytearray()
        found = by_bytes(client, server, ended, self._command) or by_words(
            self._request, self._command
        )
        if found is None or found.unreadable is not None:
            return
        self._parser = parser_for(found, self._found.append)
        for event in held:
            self._feed(event)

    def _feed(self, event: Input | Output) -> None:
        parser = self._parser
        if parser is None:
            return
        try:
            if isinstance(event, Input):
                parser.client(event.t, event.data)
            elif not event.stderr:
                parser.server(event.t, event.data)
        except TransferParseError:
            self._parser = None  # what it understood is reported; the rest cannot be

    def _finish(self, t: int) -> None:
        parser, self._parser = self._parser, None
        if parser is not None:
            with contextlib.suppress(TransferParseError):  # what was open is reported
                parser.finish(t)
