"""The gateway's moderation desk, on a real event loop with a clock the test moves:
waiting, starting, pausing, resuming, terminating, refusing, and the presence it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from producer.moderation import Hooks, Moderated, ModerationDesk
from sshtrail import control
from sshtrail.commandpolicy import parse_policy
from sshtrail.moderationpolicy import Moderation
from sshtrail.policyfile import PolicyError

SESSION = "0190f000-0000-7000-8000-000000000001"


@dataclass
class Seen:
    """What the desk did to one session: told, noted, held, ended; and what it published."""

    told: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    holds: list[bool] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    published: list[control.ModerationState] = field(default_factory=list)

    def hooks(self) -> Hooks:
        return Hooks(self.told.append, self.notes.append, self.holds.append, self.ended.append)

    def send(self, message: control.Message) -> str | None:
        assert isinstance(message, control.ModerationState)
        self.published.append(message)
        return None

    @property
    def phases(self) -> list[str]:
        return [state.phase for state in self.published]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def presence(
    state: control.PresenceState = "here",
    moderator: str = "alice",
    groups: tuple[str, ...] = (),
    at: int | None = None,
    session: str = SESSION,
) -> control.Presence:
    return control.Presence(
        request_id=control.new_id(),
        at=control.now_ns() if at is None else at,
        session=session,
        moderator=moderator,
        groups=groups,
        state=state,
        via="console",
    )


def rule(**changes: object) -> Moderation:
    values: dict[str, object] = {
        "name": "pay",
        "moderators": ("alice", "group:dba"),
        "count": 1,
        "on_leave": "pause",
        "wait_s": 5.0,
    }
    values.update(changes)
    return Moderation(**values)  # type: ignore[arg-type]


Scenario = Callable[[ModerationDesk, Moderated, Seen, Clock], Awaitable[None]]


def run(scenario: Scenario, moderation: Moderation | None = None) -> Seen:
    seen, clock = Seen(), Clock()

    async def main() -> None:
        desk = ModerationDesk("gw-test", seen.send, clock)
        moderated = desk.open(moderation or rule(), SESSION, "bob", "pay-1", seen.hooks())
        await scenario(desk, moderated, seen, clock)
        desk.ended(moderated, "client closed the channel")

    asyncio.run(main())
    return seen


def phase_of(moderated: Moderated) -> str:
    """The phase now (a function: the checker would keep what an earlier assert said)."""
    return moderated.phase


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_moderator_joining_starts_the_session() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        await settle()
        assert "waiting for a moderator (1 needed, rule pay" in seen.told[0]
        assert not waiting.done()
        desk.presence(presence("join"), "here")
        assert await waiting is None
        assert phase_of(moderated) == "running"

    seen = run(scenario)
    assert seen.phases == ["waiting", "running", "ended"]
    assert seen.published[1].present == ("alice",)
    assert "moderator alice joined (via console)" in seen.notes
    assert any(note.startswith("started: 1 of 1 moderators present (alice)") for note in seen.notes)


def test_observers_and_the_operator_do_not_count() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        await settle()
        desk.presence(presence("join", moderator="carol"), "here")
        desk.presence(presence("join", moderator="bob", groups=("dba",)), "here")
        await settle()
        assert not waiting.done()
        desk.presence(presence("join", moderator="dave", groups=("dba",)), "here")  # by group
        assert await waiting is None

    seen = run(scenario)
    assert "carol watching (via console); does not count: not a moderator of rule pay" in seen.notes
    assert any("bob watching" in note and "their own session" in note for note in seen.notes)
    assert "moderator dave joined (via console)" in seen.notes


def test_nobody_within_wait_s_refuses_the_session() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        assert await desk.wait(moderated) == "no moderator joined within 0.2 s (rule pay)"

    seen = run(scenario, rule(wait_s=0.2))
    assert seen.phases == ["waiting", "refused"]
    assert seen.notes[-1] == "refused: no moderator joined within 0.2 s (rule pay)"


def test_a_moderator_leaving_pauses_input_and_coming_back_resumes_it() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        desk.presence(presence("join"), "here")
        await waiting
        desk.presence(presence("leave"), "here")
        assert phase_of(moderated) == "paused"
        assert seen.holds == [True]
        assert "What you type is held, not sent, until a moderator is back." in seen.told[-1]
        desk.presence(presence("join"), "here")
        assert phase_of(moderated) == "running"
        assert seen.holds == [True, False]

    seen = run(scenario)
    assert seen.phases == ["waiting", "running", "paused", "running", "ended"]
    assert "moderator alice left (ended their moderation)" in seen.notes


def test_silence_counts_as_leaving() -> None:
    async def scenario(
        desk: ModerationDesk, moderated: Moderated, seen: Seen, clock: Clock
    ) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        desk.presence(presence("join"), "here")
        await waiting
        clock.now += control.PRESENCE_TTL_S - 0.5
        desk.presence(presence("here"), "here")  # a heartbeat keeps them present
        clock.now += control.PRESENCE_TTL_S - 0.5
        await asyncio.sleep(0.6)
        assert phase_of(moderated) == "running"
        clock.now += 1.0
        await asyncio.sleep(0.6)
        assert phase_of(moderated) == "paused"

    seen = run(scenario)
    silent = f"moderator alice left (no word from them for {control.PRESENCE_TTL_S:g} s)"
    assert silent in seen.notes


def test_on_leave_terminate_ends_the_session_with_the_reason() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        desk.presence(presence("join"), "here")
        await waiting
        desk.presence(presence("leave"), "here")

    seen = run(scenario, rule(on_leave="terminate"))
    assert seen.ended == [
        "moderator alice left: 0 of 1 moderators present (none) (rule pay, on_leave = terminate)"
    ]
    assert seen.holds == []
    assert seen.phases == ["waiting", "running", "ended"]


def test_two_needed() -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        desk.presence(presence("join"), "here")
        await settle()
        assert not waiting.done()
        desk.presence(presence("join", moderator="erin", groups=("dba",)), "here")
        assert await waiting is None

    seen = run(scenario, rule(count=2))
    assert seen.published[-2].present == ("alice", "erin")


def test_stale_and_replayed_presence_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stale_at = control.now_ns() - (control.PRESENCE_FRESH_S + 5) * 10**9

    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        waiting = asyncio.create_task(desk.wait(moderated))
        desk.presence(presence("join", at=stale_at), "p0@1")
        await settle()
        assert not waiting.done()
        first = presence("join")
        desk.presence(first, "p0@2")
        await waiting
        desk.presence(presence("leave", at=first.at + 1), "p0@3")
        assert phase_of(moderated) == "paused"
        desk.presence(first, "p0@4")  # the join, re-sent: not a moderator coming back
        assert phase_of(moderated) == "paused"

    run(scenario)
    refusals = [r.getMessage() for r in caplog.records if "refused a presence" in r.getMessage()]
    assert len(refusals) == 2
    assert "at p0@1" in refusals[0]
    assert "a copy kept and re-sent" in refusals[0]
    assert "at p0@4" in refusals[1]
    assert "not after the last one taken" in refusals[1]


def test_presence_for_another_gateways_session_is_ignored_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario(desk: ModerationDesk, moderated: Moderated, seen: Seen, _: Clock) -> None:
        desk.presence(presence("join", session="elsewhere", at=1), "p0@1")
        assert moderated.present == {}

    run(scenario)
    assert not [r for r in caplog.records if "presence" in r.getMessage()]


POLICY = b"""
[[moderation]]
name = "pay"
targets = ["pay-*"]
moderators = ["alice", "group:dba"]
count = 2
on_leave = "terminate"
wait_s = 60
message = "payments: four eyes"

[[moderation]]
name = "rest"
moderators = ["alice"]
"""


def test_the_first_table_that_covers_a_session_decides() -> None:
    policy = parse_policy(POLICY, "policy.toml")
    first = policy.moderation("bob", "pay-1")
    assert first is not None
    assert (first.name, first.count, first.on_leave, first.wait_s) == ("pay", 2, "terminate", 60)
    rest = policy.moderation("bob", "db-1")
    assert rest is not None
    assert (rest.name, rest.count, rest.wait_s) == ("rest", 1, 300)
    assert parse_policy(b"", "empty").moderation("bob", "pay-1") is None


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('name = "m"', "'moderators' must be a list of strings"),
        ('name = "m"\nmoderators = []', "'moderators' must be a list of strings"),
        ('name = "m"\nmoderators = ["a b"]', "is neither an auditor's name nor group:NAME"),
        ('name = "m"\nmoderators = ["a"]\ncount = 0', "'count' must be a whole number"),
        ('name = "m"\nmoderators = ["a"]\ncount = true', "'count' must be a whole number"),
        ('name = "m"\nmoderators = ["a"]\non_leave = "kick"', "'on_leave' must be pause or"),
        ('name = "m"\nmoderators = ["a"]\nwait_s = "5m"', "'wait_s' must be a number"),
        ('name = "m"\nmoderators = ["a"]\nwait_s = 0', "'wait_s' must be from 1 to 86400"),
        ('name = "m"\nmoderators = ["a"]\nkeep = 1', "unknown key 'keep'"),
        ('moderators = ["a"]', "'name' must be 1-64 letters"),
    ],
)
def test_a_bad_moderation_table_is_refused_with_the_reason(table: str, problem: str) -> None:
    with pytest.raises(PolicyError, match=r"policy\.toml: moderation 1") as raised:
        parse_policy(f"[[moderation]]\n{table}\n".encode(), "policy.toml")
    assert problem in str(raised.value)


def test_a_moderation_table_may_not_reuse_a_rules_name() -> None:
    text = b'[[rule]]\nname = "x"\naction = "warn"\nmatch = ["ls"]\n'
    text += b'[[moderation]]\nname = "x"\nmoderators = ["a"]\n'
    with pytest.raises(PolicyError, match="the name 'x' is used twice"):
        parse_policy(text, "policy.toml")


def test_a_late_heartbeat_counts_from_when_it_was_sent() -> None:
    """A heartbeat that waited somewhere (a console's queue, a slow broker) does not
    keep a closed tab counted for a whole TTL after it arrives."""

    async def scenario(
        desk: ModerationDesk, moderated: Moderated, seen: Seen, clock: Clock
    ) -> None:
        late = control.now_ns() - 2 * 10**9
        desk.presence(presence("join", at=late), "here")
        left = moderated.present["alice"] - clock.now
        assert control.PRESENCE_TTL_S - 2.2 < left < control.PRESENCE_TTL_S - 1.8
        older = control.now_ns() - 6 * 10**9  # far older than a heartbeat may be ...
        desk.presence(presence("join", moderator="dave", groups=("dba",), at=older), "here")
        left = moderated.present["dave"] - clock.now  # ... one heartbeat's interval counts
        assert abs(left - control.HEARTBEAT_S) < 0.01

    run(scenario)
