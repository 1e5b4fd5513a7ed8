"""Hypothesis strategies for sessions in the wire format."""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from sshtrail import events as ev
from sshtrail.ids import uuid7

text = st.text(max_size=40)
u32 = st.integers(0, 2**32 - 1)
t_ns = st.integers(0, 2**62)

session_ids = st.integers(0, 2**48 - 1).map(uuid7)

starts = st.builds(
    ev.Start,
    t=st.just(0),
    operator=text,
    client=text,
    target=text,
    host=text,
    port=st.integers(0, 65535),
    user=text,
    gateway=text,
    term=text,
    cols=u32,
    rows=u32,
    started_at=st.integers(0, 2**63 - 1),
)

middle_events: st.SearchStrategy[ev.Event] = st.one_of(
    st.builds(ev.Input, t=t_ns, data=st.binary(max_size=64)),
    st.builds(ev.MaskedInput, t=t_ns, count=u32),
    st.builds(ev.Output, t=t_ns, data=st.binary(max_size=256), stderr=st.booleans()),
    st.builds(ev.Resize, t=t_ns, cols=u32, rows=u32, width_px=u32, height_px=u32),
    st.builds(
        ev.Exec,
        t=t_ns,
        mode=st.sampled_from(["shell", "exec", "subsystem", "direct-tcpip"]),
        command=st.binary(max_size=64),
    ),
    st.builds(
        ev.Exit,
        t=t_ns,
        status=st.none() | u32,
        signal=st.none() | text,
        core_dumped=st.booleans(),
        message=text,
    ),
)


def in_time_order(events: list[ev.Event]) -> list[ev.Event]:
    """The same events with their ``t`` sorted, as a recorder emits them."""
    times = sorted(event.t for event in events)
    return [_with_t(event, t) for event, t in zip(events, times, strict=True)]


def _with_t(event: ev.Event, t: int) -> ev.Event:
    import msgspec

    return msgspec.structs.replace(event, t=t)


@st.composite
def sessions(draw: st.DrawFn, max_chunks: int = 5) -> tuple[uuid.UUID, list[list[ev.Event]]]:
    """A session id and its events split into chunks (the last one ends with ``end``)."""
    session_id = draw(session_ids)
    n_chunks = draw(st.integers(1, max_chunks))
    chunks: list[list[ev.Event]] = []
    for index in range(n_chunks):
        body = draw(
            st.lists(middle_events, min_size=0 if index in (0, n_chunks - 1) else 1, max_size=6)
        )
        if index == 0:
            body = [draw(starts), *body]
        chunks.append(body)
    flat = in_time_order([event for chunk in chunks for event in chunk])
    # Re-split the time-ordered events at the same boundaries.
    out: list[list[ev.Event]] = []
    pos = 0
    for chunk in chunks:
        out.append(flat[pos : pos + len(chunk)])
        pos += len(chunk)
    if out[0] and not isinstance(out[0][0], ev.Start):
        raise AssertionError("start must stay first")  # t=0 sorts first
    return session_id, out
