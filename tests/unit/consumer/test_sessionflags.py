"""The flags the store group sets, from recorded event sequences read as the store reads
them (consumer/sessionrow.py), in one batch or chunk by chunk."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from consumer.sessionflags import FlagTracker, reads_program_from_stdin, transfer_unrequested
from consumer.sessionrow import SessionRow
from sshtrail.events import Event, ExecMode, Input, Output
from sshtrail.models import SessionRecord
from sshtrail.transferprotocol import by_bytes
from sshtrail.wire import decode_chunk
from tests.support.flaggedsessions import (
    ELF,
    SCRIPT,
    SFTP_INIT,
    WIPE,
    blind_eval,
    fed,
    shell,
    wiping_prompt,
)
from tests.support.recordings import events_session

AT = dt.datetime(2026, 12, 10, tzinfo=dt.UTC)


def flags_of(
    chunks: list[list[Event]],
    *,
    term: str = "xterm",
    request: tuple[ExecMode, bytes] = ("shell", b""),
) -> str | None:
    """The ``flags`` column after storing the session chunk by chunk, the tracker's state
    passing through the row between chunks as between batches."""
    session_id, messages = events_session(chunks, term=term, request=request)
    row = SessionRow(SessionRecord(id=session_id))
    for message in messages:
        stored = row.values()  # as the store reads the row back for the next batch
        row = SessionRow(SessionRecord(**stored))
        row.add(decode_chunk(message), AT)
    return row.record.flags


def test_a_prompt_wiping_every_command_flags_the_session() -> None:
    assert flags_of(wiping_prompt()) == "prompt-erases"


def test_the_wipe_split_across_outputs_still_counts() -> None:
    chunks = shell([(b"id", b"\x1b[H")] * 3)
    for chunk in chunks:
        chunk.append(Output(chunk[-1].t + 1, b"\x1b[2J"))
    assert flags_of(chunks) == "prompt-erases"


def test_clear_typed_once_or_now_and_then_does_not_flag() -> None:
    clear = b"\x1b[H\x1b[2J\x1b[3J"
    assert flags_of(shell([(b"ls", b"a b\r\n"), (b"clear", clear), (b"ls", b"")])) is None
    lines = [(b"clear", clear), (b"clear", clear), (b"uptime", b"up 3 days\r\n")] * 2
    assert flags_of(shell(lines)) is None


def test_a_full_screen_program_repainting_does_not_flag() -> None:
    vim = b"\x1b[?1049h\x1b[H\x1b[2J~\r\n~"
    lines = [(b"vim notes", vim), (b":e other", b"\x1b[H\x1b[2J~"), (b":e third", b"\x1b[H\x1b[J")]
    lines += [(b":e fourth", b"\x1b[H\x1b[J")]
    assert flags_of(shell(lines)) is None


def test_tput_smcup_then_a_wiping_prompt_flags() -> None:
    lines = [(b"tput smcup", b"\x1b[?1049h\x1b[22;0;0t")]
    lines += [(b"id", WIPE), (b"cat /etc/shadow", WIPE), (b"curl -s x | sh", WIPE)]
    assert flags_of(shell(lines)) == "prompt-erases"


def binary_exec(command: bytes, data: bytes) -> str | None:
    return flags_of(fed(data), term="", request=("exec", command))


@pytest.mark.parametrize(
    "command",
    [b"bash -s", b"gunzip | bash", b"base64 -d | sh -s -- x", b"python3 -", b"env A=1 perl"],
)
def test_binary_fed_to_an_interpreter_on_stdin_flags(command: bytes) -> None:
    assert binary_exec(command, ELF) == "binary-stdin"


def test_control_bytes_without_a_nul_flag_too() -> None:
    noise = bytes(k % 32 for k in range(1, 2000) if k % 32 not in (0, 9, 10, 11, 12, 13))
    assert binary_exec(b"sh", noise) == "binary-stdin"


@pytest.mark.parametrize(
    ("command", "data"),
    [
        (b"bash -s", SCRIPT),  # text, UTF-8 included
        (b"python3 /opt/job.py", ELF),  # a script: stdin is its data
        (b"bash -c 'cat > /tmp/x'", ELF),  # a program given on the command line
        (b"tar xzf - -C /srv", ELF),  # no interpreter
    ],
)
def test_text_or_no_interpreter_on_stdin_does_not_flag(command: bytes, data: bytes) -> None:
    assert binary_exec(command, data) is None


@pytest.mark.parametrize(
    "command",
    [
        b"base64 -d | bash",
        b"env base64 --decode | sudo bash -s",
        b"xxd -r -p | sh",
        b"openssl enc -d -base64 | python3 -",
        b"sh -c 'base32 -d | perl'",
        b"gzip -dc | sh",
    ],
)
def test_a_program_decoded_on_its_way_to_an_interpreter_flags_though_sent_as_text(
    command: bytes,
) -> None:
    """``base64 -d | bash`` is fed text, yet what runs is not what an auditor reads
    (issue 41's case 26)."""
    encoded = b"ZWNobyBoaWRkZW4K\n" * 40
    assert binary_exec(command, encoded) == "binary-stdin"


@pytest.mark.parametrize("command", [b"base64 /tmp/f | bash", b"bash -s", b"base64 -d > /tmp/x"])
def test_text_not_decoded_for_an_interpreter_does_not_flag(command: bytes) -> None:
    assert binary_exec(command, b"echo hello\n" * 40) is None


def test_with_a_pty_the_input_is_keys_not_a_program() -> None:
    chunks: list[list[Event]] = [[Input(10, ELF)]]
    assert flags_of(chunks, term="xterm", request=("exec", b"bash -s")) is None


def test_suspicious_masked_input_is_blind_eval() -> None:
    assert flags_of(blind_eval()) == "blind-eval"


@pytest.mark.parametrize(
    ("command", "reads"),
    [
        ("sh", True),
        ("sudo -u root bash -s -- arg", True),
        ("curl -s https://x | python3", True),
        ("node -", True),
        ("ruby -w", True),
        ("bash script.sh", False),
        ("python3 -c 'print(1)'", False),
        ("perl -e 'print 1'", False),
        ("node --eval 1", False),
        ("python3 -m http.server", False),
        ("bash -o pipefail", True),
        ("ls | grep sh", False),
    ],
)
def test_which_commands_read_their_program_from_stdin(command: str, reads: bool) -> None:
    assert reads_program_from_stdin(command) is reads


def test_a_transfer_is_unrequested_when_no_request_names_it() -> None:
    found = by_bytes(SFTP_INIT, b"", ended=False)
    assert transfer_unrequested(found, "exec", "cat | sh")
    assert transfer_unrequested(found, "subsystem", "backup")
    assert transfer_unrequested(found, "exec", "scp -t /tmp")  # another protocol
    assert not transfer_unrequested(found, "subsystem", "sftp")
    assert not transfer_unrequested(found, "exec", "/usr/lib/openssh/sftp-server")
    assert not transfer_unrequested(None, "exec", "cat | sh")


def test_a_state_no_store_wrote_starts_afresh() -> None:
    assert FlagTracker.from_state("{not json") == FlagTracker()
    assert FlagTracker.from_state("[1, 2]") == FlagTracker()
    assert FlagTracker.from_state('{"run": "x", "pty": false}') == FlagTracker(pty=False)
    tracker = FlagTracker(run=2, line="ls", screen="shell", pty=True, odd=3)
    assert FlagTracker.from_state(tracker.state()) == tracker


def test_flags_stay_when_later_chunks_say_nothing() -> None:
    row = SessionRow(SessionRecord(id=uuid.uuid4(), flags="transfer-unrequested"))
    _, messages = events_session([[Output(5, b"hello")]])
    for message in messages:
        row.add(decode_chunk(message), AT)
    assert row.record.flags == "transfer-unrequested"
