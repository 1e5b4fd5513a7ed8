"""SFTP and SCP told by their bytes and by the words of what ran them, not by a name."""

from __future__ import annotations

import pytest

from sshtrail.scp import ScpMode
from sshtrail.shellwords import commands, program_at
from sshtrail.transferprotocol import SCP, SFTP, Recognised, by_bytes, by_words, recognise
from tests.support import sftpwire as w

UPLOAD = b"C0644 5 a.txt\nhello\0"
#: An SFTP INIT of version 6 with an extension pair after the version (draft 13).
INIT_WITH_EXTENSION = w.packet(1, w.u32(6), w.string("x@example.com"), w.string("1"))


@pytest.mark.parametrize(
    ("client", "server", "expected"),
    [
        (w.INIT, b"", Recognised(SFTP)),
        (w.INIT + w.path_request(16, 1, "."), w.VERSION, Recognised(SFTP)),
        (INIT_WITH_EXTENSION, b"", Recognised(SFTP)),
        (UPLOAD, b"\0\0", Recognised(SCP, ScpMode("sink", "", frozenset()))),
        (
            b"T1700000000 0 1700000000 0\n" + UPLOAD,
            b"\0",
            Recognised(SCP, ScpMode("sink", "", frozenset())),
        ),
        (b"D0755 0 tree\n", b"\0", Recognised(SCP, ScpMode("sink", "", frozenset()))),
        (b"\0\0\0", UPLOAD, Recognised(SCP, ScpMode("source", "", frozenset()))),
    ],
)
def test_bytes_that_are_sftp_or_scp(client: bytes, server: bytes, expected: Recognised) -> None:
    assert by_bytes(client, server, ended=True) == expected


@pytest.mark.parametrize(
    ("client", "server"),
    [
        (b"", b""),
        (b"ls -la\n", b"total 0\n"),
        (b"\x1f\x8b\x08\x00" + bytes(60), b""),  # a gzip stream into `tar x`
        (b"\0\0\0\x05\x02\0\0\0\x03", b""),  # a length and type 2: not a client's INIT
        (b"\0\x20\0\0\x01\0\0\0\x03", b""),  # type 1, but longer than any SFTP packet
        (b"\0", b"hello\n"),  # a NUL, and output that is no control line
        (b"C is a language\n", b""),
        (b"\0\0\0", b""),  # too little to tell from any other bytes
    ],
)
def test_bytes_that_are_neither(client: bytes, server: bytes) -> None:
    assert by_bytes(client, server, ended=True) is None


def test_bytes_cut_short_are_unreadable_not_passed_over() -> None:
    for cut in range(4, len(w.INIT)):
        found = by_bytes(w.INIT[:cut], b"", ended=True)
        assert found is not None, cut
        assert found.protocol == SFTP
        assert found.unreadable == (
            "its bytes look like SFTP, but the session ended inside its INIT packet"
        )
        # Only the first chunks were looked at: the rest is the parser's to read.
        assert by_bytes(w.INIT[:cut], b"", ended=False) == Recognised(SFTP)
    line = b"C0644 300000 a.bin"
    found = by_bytes(line, b"\0", ended=True, command="$S -t /up")
    assert found == Recognised(
        SCP,
        ScpMode("sink", "/up", frozenset("t")),
        "its bytes look like SCP, but the session ended inside its first control line",
    )
    found = by_bytes(b"\0", b"D0755 0 tr", ended=True)
    assert found is not None
    assert found.scp is not None
    assert found.scp.mode == "source"
    assert found.unreadable is not None
    assert by_bytes(line, b"\0", ended=False) == Recognised(SCP, ScpMode("sink", "", frozenset()))


def test_scp_told_by_bytes_takes_its_path_from_arguments_whatever_the_program() -> None:
    found = by_bytes(UPLOAD, b"\0", ended=True, command="S=scp; exec $S -p -t /srv/in")
    assert found == Recognised(SCP, ScpMode("sink", "/srv/in", frozenset("pt")))
    # The arguments of the other way are not this transfer's.
    found = by_bytes(UPLOAD, b"\0", ended=True, command="$S -f /srv/out")
    assert found == Recognised(SCP, ScpMode("sink", "", frozenset()))


@pytest.mark.parametrize(
    ("request_", "command", "expected"),
    [
        ("subsystem", "sftp", Recognised(SFTP)),
        ("exec", "/usr/lib/openssh/sftp-server", Recognised(SFTP)),
        ("exec", "exec /usr/libexec/sftp-server -l INFO", Recognised(SFTP)),
        ("exec", "env scp -t /tmp", Recognised(SCP, ScpMode("sink", "/tmp", frozenset("t")))),
        (
            "exec",
            "/usr/bin/scp -f FILE",
            Recognised(SCP, ScpMode("source", "FILE", frozenset("f"))),
        ),
        ("exec", "sh -c 'scp -t DIR'", Recognised(SCP, ScpMode("sink", "DIR", frozenset("t")))),
        ("exec", "exec scp -t x", Recognised(SCP, ScpMode("sink", "x", frozenset("t")))),
        ("exec", "sudo -u root scp -t x", Recognised(SCP, ScpMode("sink", "x", frozenset("t")))),
        ("exec", "LC_ALL=C 'scp' -t x", Recognised(SCP, ScpMode("sink", "x", frozenset("t")))),
        ("exec", "cd /tmp && scp -f y", Recognised(SCP, ScpMode("source", "y", frozenset("f")))),
        ("exec", "echo scp -t x", None),
        ("exec", "man sftp-server", None),
        ("exec", "ls -t", None),
        ("subsystem", "netconf", None),
        ("shell", "", None),
    ],
)
def test_words_however_the_program_is_wrapped(
    request_: str, command: str, expected: Recognised | None
) -> None:
    assert by_words(request_, command) == expected


def test_bytes_come_before_words_and_only_programs_carry_transfers() -> None:
    # Words that say scp on a channel whose bytes are SFTP: the bytes are read as SFTP.
    assert recognise("exec", "scp -t /x; sftp-server", w.INIT, b"", True) == Recognised(SFTP)
    # A subsystem of any name.
    assert recognise("subsystem", "files", w.INIT, w.VERSION, True) == Recognised(SFTP)
    # Bytes that say nothing: the words do (an scp that moved nothing).
    found = recognise("exec", "env scp -t /x", b"", b"\0", True)
    assert found == Recognised(SCP, ScpMode("sink", "/x", frozenset("t")))
    # A terminal or a forwarded connection is not sniffed.
    assert recognise("shell", "", w.INIT, b"", True) is None
    assert recognise("direct-tcpip", "db:5432", UPLOAD, b"", True) is None


def test_which_word_runs_the_program() -> None:
    [words] = commands("env -i A=1 /usr/bin/scp -t x")
    assert program_at(words, "scp") == 3
    [words] = commands("A=1 B=2 scp -f y")
    assert program_at(words, "scp") == 2
    [words] = commands("grep scp -t x")
    assert program_at(words, "scp") is None
    assert program_at([], "scp") is None
    assert program_at(["A=1"], "scp") is None
