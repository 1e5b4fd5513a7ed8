"""The console's account of who moderates from it: begun, ended, lapsed, bounded."""

from __future__ import annotations

import pytest

from consumer.web.heartbeats import LEFT_MEMORY_S, Ended, Heartbeats, Moderating, TooMany


def test_a_moderation_begins_once_ends_once_and_lapses_after_the_ttl() -> None:
    now = [0.0]
    beats = Heartbeats(ttl_s=3.5, clock=lambda: now[0], limit=2)
    assert beats.beat("ann", "s1", "10.0.0.1") is True
    now[0] = 3.0
    assert beats.beat("ann", "s1", "10.0.0.2") is False  # a heartbeat: nothing begins
    assert beats.beat("bob", "s1", "10.0.0.3") is True
    with pytest.raises(TooMany):
        beats.beat("cid", "s1", "10.0.0.4")  # full: refused, not someone else dropped
    assert len(beats) == 2
    now[0] = 4.0
    assert beats.beat("bob", "s1", "10.0.0.3") is False
    now[0] = 6.5
    assert beats.lapsed() == []  # ann's last heartbeat 3.5 s ago: not yet
    now[0] = 7.0
    assert beats.lapsed() == [Moderating("ann", "s1", "10.0.0.2")]  # with its last address
    assert beats.end("ann", "s1") is False  # already told ended
    assert beats.beat("cid", "s1", "10.0.0.4") is True  # room again
    assert beats.end("cid", "s1") is True
    assert beats.lapsed_all() == [Moderating("bob", "s1", "10.0.0.3")]
    assert len(beats) == 0


def test_a_heartbeat_on_its_way_after_an_explicit_leave_is_refused_until_a_join() -> None:
    """ "End moderation" is final: a heartbeat sent just before it must not begin the
    moderation again (the gateway would count the moderator for another TTL)."""
    now = [0.0]
    beats = Heartbeats(ttl_s=3.5, clock=lambda: now[0])
    assert beats.beat("ann", "s1", "a", joining=True) is True
    assert beats.end("ann", "s1") is True
    now[0] = 0.2
    with pytest.raises(Ended):
        beats.beat("ann", "s1", "a")
    assert beats.beat("bob", "s1", "b") is True  # someone else's is not affected
    assert beats.beat("ann", "s1", "a", joining=True) is True  # a join begins it again
    assert beats.beat("ann", "s1", "a") is False
    assert beats.end("ann", "s1") is True
    now[0] = 0.2 + LEFT_MEMORY_S + 1
    assert beats.beat("ann", "s1", "a") is True  # long after: a tab that slept, back
