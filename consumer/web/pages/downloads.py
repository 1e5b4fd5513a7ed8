"""A session's recording downloaded: the player's asciicast and the exports, streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from consumer.web.pages.base import (
    Page,
    skip_chunk,
)
from sshtrail import queries
from sshtrail.exports import Format, asciicast, chunk_events, export_lines

EXPORTS: dict[str, tuple[Format, str, str]] = {
    "asciicast": ("asciicast", "application/x-asciicast", "cast"),
    "raw": ("raw", "application/octet-stream", "raw"),
    "json": ("json", "application/x-ndjson", "jsonl"),
}
#: Bytes the streamed recordings are sent in at least (fewer, larger writes).
PIECE = 64 << 10


class Downloads(Page):
    """A session's recording as the player plays it, and as each export writes it."""

    def cast(self, request: Request) -> Response:
        with self._store() as conn:
            row = self._in_scope(conn, request)
        with_input = request.query_params.get("input") == "1"
        commands = self._commands(row["id"]) or []
        markers = [(hit.t / 1e9, f"$ {hit.text}"[:200]) for hit in commands]
        self.console.log(
            request,
            "replay",
            session_id=row["id"],
            detail="with input" if with_input else "",
        )

        def lines(conn: Connection) -> Iterator[bytes]:
            events = (
                event
                for _seq, event in chunk_events(queries.chunk_stream(conn, row["id"]), skip_chunk)
            )
            for line in asciicast(events, markers=markers, with_input=with_input):
                yield line + b"\n"

        return StreamingResponse(
            self._streamed(lines), media_type="application/x-asciicast; charset=utf-8"
        )

    def export(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in EXPORTS:
            raise HTTPException(404, "no such export: asciicast, raw or json")
        shape, media, suffix = EXPORTS[kind]
        with self._store() as conn:
            row = self._in_scope(conn, request)
        self.console.log(request, "export", session_id=row["id"], detail=kind)

        def pieces(conn: Connection) -> Iterator[bytes]:
            yield from export_lines(shape, queries.chunk_stream(conn, row["id"]), skip_chunk)

        name = f"sshtrail-{row['id'].hex[:12]}.{suffix}"
        return StreamingResponse(
            self._streamed(pieces),
            media_type=media,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    def _streamed(self, produce: Any) -> Iterator[bytes]:
        """``produce(conn)``'s pieces joined into writes of :data:`PIECE` bytes, on a
        connection of its own held for the download only."""
        with self.console.store.connect() as conn:
            pending: list[bytes] = []
            size = 0
            for piece in produce(conn):
                pending.append(piece)
                size += len(piece)
                if size >= PIECE:
                    yield b"".join(pending)
                    pending, size = [], 0
            if pending:
                yield b"".join(pending)
