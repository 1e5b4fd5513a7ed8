"""What a session page shows instead of a terminal player when the session was no
terminal: an SFTP or SCP session's operations and files (and a download per file),
or a forwarded connection's bytes as hex and text.

The store group has read every ended transfer session into ``transfers``
(consumer/transfers.py); the page lists those rows. A file's bytes are not
stored apart from the recording: a download reads the session again and takes
them out (sshtrail/filetransfers.py ``extract``), as ``sshtrail export
--transfer`` does, so it is byte-exact and needs the same switch,
``transfers.content_export``, and on top the auditor's ``export_files`` right.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any

from sqlalchemy import Connection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from consumer.web.auth import Auditor
from consumer.web.pages.base import Page, read_number, skip_chunk
from sshtrail import hexdump, queries, transferqueries
from sshtrail.errors import InvalidError, NotFound
from sshtrail.exports import chunk_events
from sshtrail.filetransfers import TooLarge, extract
from sshtrail.settings import Settings

#: Which way a file went, as the page says it.
DIRECTIONS = {
    "upload": "to the target",
    "download": "from the target",
    "read-write": "both ways",
}
#: ``transfers`` states whose operations are read (``consumer/transfers.py``).
READ = ("done", "failed")
#: A file number in a download's path: digits only, and not absurdly many.
FILE_NUMBER = re.compile(r"[0-9]{1,9}")
#: Bytes a download is sent in.
PIECE = 1 << 20
#: The byte view's pages at most (``?bytes=N``): PAGE_BYTES each, 4 GiB in all.
BYTE_PAGES = 1 << 20


def may_download(auditor: Auditor, settings: Settings) -> bool:
    """Whether ``auditor`` may take files out of recordings from the console."""
    return settings.transfers.content_export and auditor.may_export_files


def session_view(
    conn: Connection,
    row: Mapping[str, Any],
    operations: list[dict[str, Any]],
    *,
    auditor: Auditor,
    settings: Settings,
    params: Mapping[str, str],
) -> dict[str, Any]:
    """The session page's ``files_view`` and ``bytes_view``: what shows in place of
    the player (each None when the session is not of its kind)."""
    files_view = bytes_view = None
    if row["transfers"] in READ:
        files_view = {
            "operations": operations,
            "files": [
                {**op, "direction": DIRECTIONS[op["op"]]}
                for op in operations
                if op["op"] in transferqueries.FILE_OPS
            ],
            "downloads": may_download(auditor, settings),
            "error": row["transfers_error"],
        }
    elif row["request"] == "direct-tcpip":
        number = read_number(params.get("bytes"), 1, 1, BYTE_PAGES)
        events = (e for _seq, e in chunk_events(queries.chunk_stream(conn, row["id"]), skip_chunk))
        bytes_view = {
            "page": hexdump.page(events, number),
            "number": number,
            "page_bytes": hexdump.PAGE_BYTES,
            "destination": row["command"],
        }
    return {"files_view": files_view, "bytes_view": bytes_view}


class FileDownloads(Page):
    """One transferred file of a session, its bytes as they crossed."""

    def download(self, request: Request) -> Response:
        auditor: Auditor = request.state.auditor
        with self._store() as conn:
            row = self._in_scope(conn, request)
        number = request.path_params["n"]
        if not may_download(auditor, self.console.settings):
            self.console.log(request, "denied", session_id=row["id"], detail=f"file {number}"[:64])
            why = (
                "downloading transferred files is off (transfers.content_export)"
                if not self.console.settings.transfers.content_export
                else "you may not download transferred files (auditors.export_files)"
            )
            raise HTTPException(403, why)
        if not FILE_NUMBER.fullmatch(number):
            raise HTTPException(400, "a file is named by its operation's number (N)")
        limit = self.console.settings.transfers.content_max_mb << 20
        with self._store() as conn:
            try:
                transfer = transferqueries.session_transfer(conn, row["id"], int(number))
            except NotFound as exc:
                raise HTTPException(404, str(exc)) from None
            self.console.log(
                request, "export-file", session_id=row["id"], detail=f"{number} {transfer.path}"
            )
            out = tempfile.TemporaryFile(prefix="sshtrail-file-")  # noqa: SIM115 (streamed, closed there)
            try:
                extract(conn, transfer, out, limit)
            except TooLarge as exc:
                out.close()
                raise HTTPException(413, str(exc)) from None
            except InvalidError as exc:
                out.close()
                raise HTTPException(409, str(exc)) from None
        size = out.tell()
        out.seek(0)
        return StreamingResponse(
            _pieces(out),
            media_type="application/octet-stream",
            headers={
                "content-disposition": f'attachment; filename="{download_name(transfer.path)}"',
                "content-length": str(size),
            },
        )


def _pieces(out: IO[bytes]) -> Iterator[bytes]:
    """The scratch file's bytes, then the file closed (and so gone)."""
    with out:
        while piece := out.read(PIECE):
            yield piece


def download_name(path: str) -> str:
    """A name for the browser to save the file as: the path's last part, with what a
    header or a file system could misread made ``_``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path.rstrip("/")))[:100]
    return name.lstrip(".") or "file"
