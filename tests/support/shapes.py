"""JSON documents of the CLI as types (docs/operations.md, "Auditor commands"), for the
tests that decode them strictly: no field missing, none unknown."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import msgspec


class Transfer(msgspec.Struct, forbid_unknown_fields=True):
    """One element of ``transfers --json``, and of ``show --json``'s ``transfers``."""

    id: int
    session: uuid.UUID
    index: int
    t: float
    at: str | None
    operator: str | None
    target: str | None
    protocol: Literal["sftp", "scp"]
    op: str
    path: str
    path2: str | None
    status: str
    bytes: int
    size: int | None
    sha256: str | None
    ranges: list[list[int]] | None
    detail: dict[str, Any]
