"""A session's recording in pieces by time: the player's index and each piece, with the
screen at its start, so playing begins at once wherever it begins.

The same session in scope, and the same access-log action (``replay``), as the
whole recording's ``/cast``: the index is logged as the replay begun, and every
piece as what of it was sent. What the pieces are is ``sshtrail/pieces.py``; the
screens at their starts are kept by ``consumer/web/screens.py``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from consumer.web.console import Console
from consumer.web.pages.base import Page
from consumer.web.pages.sessions import IDLE_LIMITS
from consumer.web.screens import ScreenCache
from sshtrail import pieces
from sshtrail.events import Event

#: A piece's number as the path gives it: decimal digits, no sign, not too many.
_NUMBER = re.compile(r"[0-9]{1,9}")
_JSON = "application/json"


class Pieces(Page):
    """The player's segmented recording of a session: ``/pieces`` and ``/pieces/N``."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.screens = ScreenCache()

    def index(self, request: Request) -> Response:
        with_input, idle = _with_input(request), _idle(request)
        with self._store() as conn:
            row = self._in_scope(conn, request)
            found = pieces.piece_map(conn, row["id"], idle * 1000)
            size = pieces.first_size(conn, row["id"])
        if not found.pieces:
            raise HTTPException(404, "the session has no stored recording")
        markers = self._markers(row["id"], found)
        self.console.log(
            request,
            "replay",
            session_id=row["id"],
            detail=f"in {len(found.pieces)} pieces" + (", with input" if with_input else ""),
        )
        query = "&".join(([f"idle={idle}"] if idle else []) + (["input=1"] if with_input else []))
        url = f"/sessions/{row['id'].hex}/pieces/{{n}}" + (f"?{query}" if query else "")
        return _json(pieces.index(found, url, size, markers))

    def piece(self, request: Request) -> Response:
        with_input, idle = _with_input(request), _idle(request)
        text = request.path_params["n"]
        if not _NUMBER.fullmatch(text):
            raise HTTPException(400, "a piece is a number: 0, 1, ... as the index lists them")
        n = int(text)
        with self._store() as conn:
            row = self._in_scope(conn, request)
            found = pieces.piece_map(conn, row["id"], idle * 1000)
            size = pieces.first_size(conn, row["id"])
        if n >= len(found.pieces):
            raise HTTPException(400, f"no piece {n}: the recording has {len(found.pieces)}")
        markers = self._markers(row["id"], found)
        self.console.log(
            request,
            "replay",
            session_id=row["id"],
            detail=f"piece {n}" + (", with input" if with_input else ""),
        )
        session_id: uuid.UUID = row["id"]
        with self._store() as conn:

            def events(piece: pieces.Piece) -> list[tuple[int, Event]]:
                return list(pieces.piece_events(conn, session_id, piece))

            snapshot = self.screens.snapshot((session_id, idle), found, n, size, events)
            piece = found.pieces[n]
            answer = pieces.segment(
                found,
                piece,
                events(piece),
                snapshot=snapshot,
                markers=markers,
                with_input=with_input,
            )
        return _json(answer)

    def _markers(self, session_id: uuid.UUID, found: pieces.PieceMap) -> list[tuple[int, str]]:
        """The commands on the player's bar, as the whole recording's player has them."""
        hits = self._commands(session_id) or []
        return sorted((found.played_ms(hit.t // 1_000_000), f"$ {hit.text}"[:200]) for hit in hits)


def _with_input(request: Request) -> bool:
    """``input=1`` adds typed input; anything but 0 or 1 is refused, not guessed."""
    value = request.query_params.get("input", "0")
    if value not in ("0", "1"):
        raise HTTPException(400, "input is 0 or 1")
    return value == "1"


def _idle(request: Request) -> int:
    """``idle=N``: pauses cut to N seconds, one of the session page's choices (none: 0)."""
    value = request.query_params.get("idle", "")
    if value not in IDLE_LIMITS:
        raise HTTPException(400, f"idle is one of {', '.join(filter(None, IDLE_LIMITS))} or none")
    return int(value or 0)


def _json(answer: dict[str, Any]) -> Response:
    return Response(
        msgspec.json.encode(answer), media_type=_JSON, headers={"cache-control": "no-store"}
    )
