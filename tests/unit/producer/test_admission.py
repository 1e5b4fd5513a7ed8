"""The gateway's limits, one typed answer each."""

from __future__ import annotations

import msgspec

from producer.admission import Admission, Record, Refuse, SpoolState, Unrecorded
from producer.locks import Locked
from producer.metrics import REFUSAL_KINDS
from producer.sharedfailures import SLOT_S, WINDOW_S
from sshtrail.settings import GatewaySettings, SpoolSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(**settings: object) -> tuple[Admission, Clock]:
    clock = Clock()
    gw = msgspec.convert(settings, GatewaySettings)
    return Admission(gw, clock), clock


def test_failures_count_per_attempt_on_one_connection() -> None:
    gate, _ = admission(max_auth_tries=3)
    assert gate.attempt("10.0.0.1", "alice", failed_here=2) is None
    refused = gate.attempt("10.0.0.1", "alice", failed_here=3)
    assert isinstance(refused, Refuse)
    assert refused.reason == "refused: too many authentication failures"


def test_failures_across_connections_stop_an_address_and_a_name_for_a_while() -> None:
    gate, clock = admission(auth_attempts_per_minute=5, auth_failures_per_operator=3)
    for n in range(3):  # from three addresses: the name is what is guessed at
        gate.failed(f"10.0.0.{n}", "alice")
    refused = gate.attempt("10.9.9.9", "alice", failed_here=0)
    assert refused is not None
    assert "operator" in refused.reason
    assert gate.attempt("10.9.9.9", "bob", failed_here=0) is None  # other names are not
    for _ in range(5):
        gate.failed("10.0.0.7", "")
    assert gate.attempt("10.0.0.7", "bob", failed_here=0) is not None
    assert isinstance(gate.connection("10.0.0.7"), Refuse)
    clock.now += WINDOW_S + SLOT_S  # the window has passed, and the slot it ended in
    assert gate.attempt("10.0.0.7", "alice", failed_here=0) is None
    assert gate.connection("10.0.0.7") is None


def test_pending_logins_are_bounded_per_address_and_overall() -> None:
    gate, _ = admission(max_pending_logins=3, max_pending_logins_per_address=2)
    assert gate.connection("a") is None
    assert gate.connection("a") is None
    assert isinstance(gate.connection("a"), Refuse)
    assert gate.connection("b") is None
    assert isinstance(gate.connection("c"), Refuse)
    gate.logged_in_or_gone("a")
    assert gate.connection("c") is None


def test_channels_are_bounded_and_refused_while_stopping() -> None:
    gate, _ = admission(max_sessions=10, max_sessions_per_operator=2)
    assert gate.channel("alice", open_total=3, open_by_operator=1) is None
    assert gate.channel("alice", 3, 2) == Refuse(
        "you have 2 sessions open already", "max_sessions_per_operator"
    )
    assert gate.channel("bob", 10, 0) is not None
    gate.accepting = False
    assert gate.channel("bob", 0, 0) == Refuse("the gateway is shutting down", "shutting down")


def test_the_spool_policy_decides_recording() -> None:
    spool = msgspec.convert({"max_bytes": 100, "reserve_bytes": 50}, SpoolSettings)
    closed, _ = admission(spool=msgspec.to_builtins(spool))
    assert closed.spool_state(99) is SpoolState.OK
    assert closed.spool_state(100) is SpoolState.FULL
    assert closed.spool_state(150) is SpoolState.RESERVE
    assert closed.recording(SpoolState.OK) == Record()
    assert isinstance(closed.recording(SpoolState.FULL), Refuse)
    opened, _ = admission(spool={"max_bytes": 100, "reserve_bytes": 50, "policy": "fail-open"})
    assert opened.recording(SpoolState.FULL) == Unrecorded("unrecorded: spool full (fail-open)")
    assert isinstance(opened.recording(SpoolState.RESERVE), Refuse)


class Locks:
    def __init__(self, unread: str | None, locked: dict[str, str]) -> None:
        self._unread = unread
        self._locked = locked

    def unread(self) -> str | None:
        return self._unread

    def locked(self, operator: str) -> Locked | None:
        reason = self._locked.get(operator)
        return Locked("ann", reason) if reason is not None else None


def test_no_operator_is_let_in_before_the_locks_are_read() -> None:
    gate, _ = admission()
    for source in (None, Locks("cannot read sshtrail.control: broker down", {})):
        refused = gate.operator("alice", source)
        assert isinstance(refused, Refuse)
        assert refused.reason == "refused: locks not read"
        assert "not yet read which operators are locked" in refused.message
    refused = gate.operator("alice", Locks(None, {"alice": "incident 7"}))
    assert refused is not None
    assert refused.message == "operator alice is locked by ann: incident 7"
    assert gate.operator("bob", Locks(None, {"alice": "incident 7"})) is None


def test_refusals_are_counted_by_a_kind_of_fixed_words_not_by_their_text() -> None:
    """A lock's reason is an auditor's free text: recorded in full, never a metric label
    (one series per reason would grow without bound)."""
    gate, _ = admission()
    refused = gate.operator("alice", Locks(None, {"alice": "incident 7, call Bob"}))
    assert refused is not None
    assert refused.reason == "refused: operator locked by ann: incident 7, call Bob"
    gate.note("10.0.0.1", refused.message, refused.kind)
    assert dict(gate.refusals) == {"operator locked": 1}
    assert set(gate.refusals) <= set(REFUSAL_KINDS)
