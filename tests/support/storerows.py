"""Rows a test puts straight into the store, shaped as the store member writes them."""

from __future__ import annotations

import datetime as dt
import uuid


def session_row(
    session_id: uuid.UUID,
    status: str,
    *,
    operator: str = "alice",
    target: str = "t1",
    request: str = "shell",
) -> dict[str, object]:
    """The ``sessions`` row of a session started now of which no chunk is stored yet:
    nothing counted, no gaps (``status``: "active", or "refused" for a refused login)."""
    return {
        "id": session_id,
        "operator": operator,
        "target": target,
        "started_at": dt.datetime.now(dt.UTC),
        "status": status,
        "request": request,
        "bytes_in": 0,
        "bytes_out": 0,
        "chunk_count": 0,
        "gaps": [],
    }
