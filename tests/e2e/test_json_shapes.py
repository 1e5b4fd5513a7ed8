"""Every command's ``--json`` against one schema (docs/operations.md, "Auditor commands"):
each document decodes into the types below with no field missing and none unknown, and a
session's id is called ``session`` wherever it appears."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

import msgspec
import pytest

from tests.support.recorded import Recorded
from tests.support.shapes import Transfer

pytestmark = pytest.mark.e2e

Verdict = Literal["ok", "gap", "unsigned", "tampered"]


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Verification(_Strict):
    status: Verdict
    detail: str
    seq: int | None
    gaps: list[list[int]]
    signer: str | None
    signer_trusted_as: str | None
    interrupted: Literal["gateway", "store"] | None


class Session(_Strict):
    session: uuid.UUID
    id: uuid.UUID
    short_id: str
    operator: str | None
    client: str | None
    target: str | None
    target_host: str | None
    target_port: int | None
    target_user: str | None
    gateway: str | None
    term: str | None
    request: Literal["shell", "exec", "subsystem", "direct-tcpip"] | None
    command: str | None
    status: Literal["active", "closed", "incomplete", "interrupted", "refused", "quarantined"]
    exit_status: int | None
    exit_signal: str | None
    end_reason: str | None
    bytes_in: int
    bytes_out: int
    chunk_count: int
    last_seq: int
    gaps: list[list[int]]
    quarantine_reason: str | None
    masked_input: Literal["masked", "suspicious"] | None
    masked_bytes: int
    masked_lines: int
    flags: list[Literal["blind-eval", "prompt-erases", "binary-stdin", "transfer-unrequested"]]
    policy: str | None
    verified: bool
    verification: Verification
    started_at: str | None
    ended_at: str | None
    interrupted_at: str | None
    duration_s: float | None


class Command(_Strict):
    t: float
    command: str
    certain: bool


class IndexWitness(_Strict):
    status: Literal["agrees", "differs", "unavailable"]
    detail: str


class RefusedChunk(_Strict):
    seq: int
    partition: int
    offset: int
    reason: str
    received_at: str


class PolicyDecision(_Strict):
    t: float
    text: str


class Variable(_Strict):
    name: str
    #: None: a name of ``gateway.secret_env``, its value never recorded.
    value: str | None
    #: Passed on to the target (its ``accept_env``).
    accepted: bool


class TerminalSize(_Strict):
    requested: tuple[int, int]
    granted: tuple[int, int]


class Signal(_Strict):
    t: float
    signal: str


class Forwarded(_Strict):
    session: uuid.UUID
    host: str
    port: int | None
    bytes_in: int
    bytes_out: int
    status: str


class Hold(_Strict):
    id: str
    session: uuid.UUID | None
    operator: str | None
    target: str | None
    since: str | None
    until: str | None
    case: str
    reason: str
    placed_by: str
    placed_at: str
    released_at: str | None
    released_by: str | None
    release_reason: str | None


class Shown(Session, forbid_unknown_fields=True):
    environment: list[Variable]
    #: None for a session without a terminal.
    terminal_size: TerminalSize | None
    signals: list[Signal]
    window_changes: int
    forwards: list[Forwarded]
    commands: list[Command]
    policy_decisions: list[PolicyDecision]
    #: A moderated session's waits, joins, leaves and pauses (same shape: time, text).
    moderation: list[PolicyDecision]
    index: IndexWitness
    transfers_read: Literal["pending", "done", "failed"] | None
    transfers: list[Transfer]
    refused: list[RefusedChunk]
    #: Legal holds naming the session, released ones too (sshtrail hold).
    holds: list[Hold]


class Hit(_Strict):
    session: uuid.UUID
    kind: Literal["command", "output", "screen", "meta", "input", "transfer"]
    t: float
    at: str | None
    operator: str | None
    target: str | None
    text: str
    matches: list[tuple[int, int]]
    certain: bool


class Verified(Verification, forbid_unknown_fields=True):
    session: uuid.UUID
    refused: list[RefusedChunk]


def decoded(raw: bytes, shape: Any) -> Any:
    return msgspec.json.decode(raw, type=shape, strict=True)


def test_every_json_document_has_the_documented_shape(recorded: Recorded) -> None:
    sessions = decoded(recorded.run("sessions", "--json").stdout, list[Session])
    assert sessions
    for session in sessions:
        assert session.session == session.id
        assert session.verified == (session.verification.status == "ok")
        # short_id is what the tables show: a prefix of the id, 12 digits at least.
        assert session.session.hex.startswith(session.short_id)
        assert 12 <= len(session.short_id) < 32
    shown = decoded(recorded.run("show", sessions[0].short_id, "--json").stdout, Shown)
    assert shown.session == sessions[0].session
    assert shown.short_id == sessions[0].short_id  # once the whole id, without dashes
    assert shown.short_id in recorded.run("sessions").stdout.decode()
    hits = decoded(recorded.run("search", "e", "--json").stdout, list[Hit])
    assert all(hit.matches for hit in hits)
    listed = decoded(recorded.run("transfers", "--all", "--json").stdout, list[Transfer])
    assert listed == []  # the shape of each is checked on real transfers in test_transfers
    verified = decoded(recorded.run("verify", "--all", "--json").stdout, list[Verified])
    assert {v.session for v in verified} == {s.session for s in sessions}
    # The names a document calls a session by: one, everywhere.
    for command in (["sessions"], ["search", "e"], ["verify", "--all"]):
        for document in json.loads(recorded.run(*command, "--json").stdout):
            assert "session" in document
            assert "session_id" not in document
