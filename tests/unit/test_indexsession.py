"""What the index makes of a session's bytes: a terminal's, or nothing for channels
whose bytes are not a terminal's (SFTP, SCP: their files are in ``transfers``)."""

from __future__ import annotations

import pytest

from sshtrail import events as ev
from sshtrail.events import ExecMode
from sshtrail.indexsession import IndexedSession
from sshtrail.wire import decode_chunk
from tests.support import sftpwire
from tests.support.recordings import events_session

SECRET_LINE = b"customer-ledger line one\n"


def documents(mode: ExecMode, command: bytes, output: bytes) -> list[tuple[str, str]]:
    sid, messages = events_session(
        [[ev.Input(1, sftpwire.INIT), ev.Output(2, output)]], term="", request=(mode, command)
    )
    session = IndexedSession(sid)
    found = []
    for message in messages:
        found += session.apply(decode_chunk(message))
    return [(doc["kind"], doc["text"]) for doc in found]


@pytest.mark.parametrize(
    ("mode", "command"),
    [("subsystem", b"sftp"), ("exec", b"scp -f /srv/ledger.txt"), ("exec", b"scp -r -t /in")],
)
def test_file_transfer_bytes_are_not_indexed_as_output(mode: ExecMode, command: bytes) -> None:
    found = documents(mode, command, SECRET_LINE)
    assert not [text for kind, text in found if kind in ("output", "screen", "input")]
    if mode == "exec":
        assert ("command", command.decode()) in found
    else:
        assert ("meta", "subsystem sftp") in found


def test_a_commands_output_still_is() -> None:
    found = documents("exec", b"cat /srv/ledger.txt", SECRET_LINE)
    assert ("output", SECRET_LINE.decode().strip()) in found
