"""Deriving a session row from its chunks, in any order."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import given
from hypothesis import strategies as st

from consumer.sessionrow import SessionRow
from sshtrail import interrupted
from sshtrail.chain import ChainWriter
from sshtrail.events import End, Event, Input, MaskedInput, Notice, Output, SealedInput
from sshtrail.models import SessionRecord
from sshtrail.wire import Chunk, decode_chunk
from tests.support.recordings import SIGNER, recording

AT = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
SESSION_ID, MESSAGES = recording(chunks=8, exit_status=7)
CHUNKS = [decode_chunk(message) for message in MESSAGES]


def row_after(chunks: list[Chunk], session_id: uuid.UUID = SESSION_ID) -> SessionRecord:
    row = SessionRow(SessionRecord(id=session_id))
    for chunk in chunks:
        row.add(chunk, AT)
    return row.record


def tracker_after(chunks: list[Chunk]) -> SessionRow:
    row = SessionRow(SessionRecord(id=SESSION_ID))
    for chunk in chunks:
        row.add(chunk, AT)
    return row


def missing(present: set[int]) -> list[list[int]]:
    """The inclusive ranges absent below the highest seq present."""
    ranges: list[list[int]] = []
    for seq in range(max(present)):
        if seq in present:
            continue
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    return ranges


@given(st.permutations(range(8)), st.integers(1, 8))
def test_gaps_are_exactly_what_is_missing_whatever_the_order(order: list[int], take: int) -> None:
    arrived = order[:take]
    row = row_after([CHUNKS[seq] for seq in arrived])
    assert row.gaps == missing(set(arrived))
    assert row.chunk_count == take
    assert row.last_seq == max(arrived)
    if row.gaps:
        assert row.status == "incomplete"
    elif 7 in arrived:
        assert row.status == "closed"
    else:
        assert row.status == "active"


def test_in_order_arrival_verifies_the_chain_as_it_goes() -> None:
    row = tracker_after(CHUNKS)
    assert (row.record.status, row.record.exit_status, row.record.verified) == ("closed", 7, True)
    assert row.record.final_digest == CHUNKS[-1].digest
    assert not row.needs_full_verify


def test_out_of_order_arrival_leaves_the_verdict_to_a_full_check() -> None:
    row = tracker_after([CHUNKS[i] for i in (0, 2, 1, 3, 4, 5, 6, 7)])
    assert row.complete
    assert row.record.verified is None
    assert row.needs_full_verify


def test_a_chunk_of_another_chain_breaks_the_link_for_good() -> None:
    _, other = recording(chunks=8)
    foreign = decode_chunk(other[3])
    row = tracker_after([*CHUNKS[:3], foreign, *CHUNKS[4:]])
    assert row.record.verified is False
    assert not row.needs_full_verify


def test_times_come_from_the_start_event_and_end_offset() -> None:
    row = row_after(CHUNKS)
    assert row.started_at is not None
    assert row.ended_at is not None
    end = CHUNKS[-1].end
    assert end is not None
    assert row.ended_at - row.started_at == dt.timedelta(microseconds=end.t // 1000)


@given(st.permutations(range(8)), st.integers(1, 8))
def test_bytes_are_counted_until_the_end_gives_the_gateways_totals(
    order: list[int], take: int
) -> None:
    arrived = order[:take]
    row = row_after([CHUNKS[seq] for seq in arrived])
    end = CHUNKS[7].end
    assert end is not None
    if 7 in arrived:
        assert (row.bytes_in, row.bytes_out) == (end.bytes_in, end.bytes_out)
    else:
        sent = sum(len(e.data) for s in arrived for e in CHUNKS[s].events if isinstance(e, Output))
        assert (row.bytes_in, row.bytes_out) == (0, sent)


def test_an_end_its_restarted_gateway_wrote_makes_the_session_interrupted() -> None:
    last = CHUNKS[5]
    chain = ChainWriter(SESSION_ID, SIGNER, seq=6, prev=last.digest)
    reason = interrupted.gateway_reason(AT, 5, AT)
    end = End(last.events[-1].t, reason, 0, 500, 7, chain.public_key)
    row = row_after([*CHUNKS[:6], decode_chunk(chain.encode([end]))])
    assert (row.status, row.end_reason, row.verified, row.interrupted_at) == (
        "interrupted",
        reason,
        True,
        None,
    )
    assert row.ended_at == row.started_at + dt.timedelta(microseconds=end.t // 1000)  # type: ignore[operator]
    assert (row.bytes_in, row.bytes_out) == (0, 500)


def test_the_command_policy_mark_is_the_strongest_decision_recorded() -> None:
    last = CHUNKS[5]
    t = last.events[-1].t
    chain = ChainWriter(SESSION_ID, SIGNER, seq=6, prev=last.digest)
    warned = Notice(t, "policy", "warn by rule w: touch x")
    rejected = Notice(t + 1, "policy", "reject by rule no-rm: rm x")
    other = Notice(t + 2, "terminal-size", "terminal size 900x9 requested, 500x9 granted")
    sixth = decode_chunk(chain.encode([warned]))
    assert row_after([*CHUNKS[:6], sixth]).policy == "warned"
    later = Notice(t + 3, "policy", "warn by rule w: touch y")
    seventh = decode_chunk(chain.encode([rejected, other, later]))
    assert row_after([*CHUNKS[:6], sixth, seventh]).policy == "rejected"  # and stays
    assert row_after(CHUNKS).policy is None
    end = End(t, "refused: command rejected by rule no-rm: no rm", 0, 0, 7, chain.public_key)
    refused = ChainWriter(SESSION_ID, SIGNER, seq=6, prev=last.digest)
    assert row_after([*CHUNKS[:6], decode_chunk(refused.encode([end]))]).policy == "rejected"


def stored_one_by_one(*batches: list[Event]) -> SessionRecord:
    """The row after each batch of events was stored as a chunk, the row read back each
    time as the store does."""
    chain = ChainWriter(SESSION_ID, SIGNER)
    row = SessionRow(SessionRecord(id=SESSION_ID))
    for events in [[CHUNKS[0].events[0]], *batches]:
        row = SessionRow.from_mapping(row.values())
        row.add(decode_chunk(chain.encode(events)), AT)
    return row.record


def test_the_masked_input_state_is_kept_in_the_row_between_chunks() -> None:
    read = stored_one_by_one(
        [Input(1, b'read -s c; eval "$c"'), Input(2, b"\r")],
        [SealedInput(3, 12, b"s" * 60)],
        [Input(4, b"\r")],  # the blind line is run
    )
    assert (read.masked_input, read.masked_lines, read.masked_reads) == ("suspicious", 1, "c")
    line: list[list[Event]] = [[MaskedInput(6, 9)], [Input(7, b"\r")]]
    vim = stored_one_by_one([Output(5, b"\x1b[?1049h")], *line * 3)
    # Lines entered while a full-screen program owns the terminal are its own.
    assert (vim.full_screen, vim.masked_input, vim.masked_lines) == (True, None, 0)
