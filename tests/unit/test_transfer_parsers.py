"""The SFTP and SCP parsers on hand-built streams: operations, evidence, bounds, garbage."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sshtrail.fileops import FileOperation, TransferParseError
from sshtrail.filetransfers import transfer_protocol
from sshtrail.scp import ScpMode, ScpParser, scp_mode
from sshtrail.sftp import MAX_PENDING, SftpParser
from tests.support import sftpwire as w

Stream = list[tuple[str, bytes]]  # ("c" client or "s" server, bytes), in recorded order


def sftp_ops(stream: Stream, pieces: int = 0) -> list[FileOperation]:
    found: list[FileOperation] = []
    parser = SftpParser(found.append)
    feed(parser, stream, pieces)
    return found


def feed(parser: SftpParser | ScpParser, stream: Stream, pieces: int = 0) -> None:
    """Feed ``stream``; with ``pieces``, each side's bytes cut at random places (as
    SSH channel data may be)."""
    cut = random.Random(pieces)
    for t, (side, data) in enumerate(stream):
        take = parser.client if side == "c" else parser.server
        at = 0
        while at < len(data):
            size = cut.randint(1, 70_000) if pieces else len(data)
            take(t, data[at : at + size])
            at += size
    parser.finish(len(stream))


def opened() -> Stream:
    return [("c", w.INIT), ("s", w.VERSION)]


def interleaved(requests: list[bytes], replies: list[bytes]) -> Stream:
    return [
        item
        for pair in zip(requests, replies, strict=True)
        for item in (("c", pair[0]), ("s", pair[1]))
    ]


@pytest.mark.parametrize("pieces", [0, 1, 2])
def test_an_upload_is_one_operation_with_size_and_sha256(pieces: int) -> None:
    content = os.urandom(200_000)
    [upload] = sftp_ops(opened() + w.upload_stream("/srv/a.bin", content), pieces)
    assert (upload.op, upload.path, upload.status) == ("upload", "/srv/a.bin", "ok")
    assert (upload.size, upload.bytes) == (200_000, 200_000)
    assert upload.sha256 == hashlib.sha256(content).hexdigest()
    assert upload.detail["flags"] == "write,create,truncate"


def test_a_pipelined_download_answered_out_of_order_is_whole() -> None:
    content = os.urandom(100_000)
    name = b"h"
    # Pipelined reads, answered in any order; the one at 98304 is short, so the
    # client asks for the rest (from 100000), which is "end of file".
    reads = [(2 + i, offset) for i, offset in enumerate(range(0, 163840, 32768))]
    answers = [
        w.data(ident, content[offset : offset + 32768])
        if offset < len(content)
        else w.status(ident, 1, "EOF")
        for ident, offset in reads
    ]
    random.Random(4).shuffle(answers)
    stream = [
        *opened(),
        ("c", w.open_(1, "/etc/big", 1)),
        ("s", w.handle(1, name)),
        ("c", w.joined(w.read(ident, name, offset, 32768) for ident, offset in reads)),
        ("s", w.joined(answers)),
        ("c", w.read(8, name, 100_000, 32768)),
        ("s", w.status(8, 1, "EOF")),
        ("c", w.close(9, name)),
        ("s", w.status(9)),
    ]
    [download] = sftp_ops(stream)
    assert (download.op, download.size) == ("download", 100_000)
    assert download.sha256 == hashlib.sha256(content).hexdigest()


def test_part_of_a_file_says_which_bytes_moved() -> None:
    name = b"h"
    stream = [
        *opened(),
        ("c", w.open_(1, "/var/log/x", 1)),
        ("s", w.handle(1, name)),
        ("c", w.read(2, name, 0, 32768) + w.read(3, name, 65536, 32768)),
        ("s", w.data(2, b"a" * 32768) + w.data(3, b"b" * 100)),
        ("c", w.close(4, name)),
        ("s", w.status(4)),
    ]
    [download] = sftp_ops(stream)
    assert download.sha256 is None
    assert download.size is None
    assert (download.bytes, download.ranges) == (32868, "0-32768,65536-65636")


def test_every_kind_of_operation_with_the_servers_answer() -> None:
    requests = [
        w.packet(14, w.u32(1), w.string("/d"), w.attrs(0o750)),
        w.path_request(18, 2, "/d/a", "/d/b"),
        w.path_request(13, 3, "/d/b"),
        w.path_request(15, 4, "/d"),
        w.packet(9, w.u32(5), w.string("/d/c"), w.attrs(0o600)),
        w.path_request(20, 6, "target", "/d/link"),
        w.packet(
            200, w.u32(7), w.string("posix-rename@openssh.com"), w.string("/x"), w.string("/y")
        ),
        w.packet(200, w.u32(8), w.string("hardlink@openssh.com"), w.string("/y"), w.string("/z")),
        w.path_request(17, 9, "/etc/shadow"),
        w.packet(200, w.u32(10), w.string("limits@openssh.com")),
        w.packet(200, w.u32(11), w.string("vendor-thing@example.com"), w.string("blob")),
    ]
    replies = [w.status(i) for i in range(1, 12)]
    replies[2] = w.status(3, 3, "Permission denied")
    replies[8] = w.packet(105, w.u32(9), w.attrs(0o640))
    replies[9] = w.packet(201, w.u32(10), w.u64(1), w.u64(2), w.u64(3), w.u64(4))
    found = sftp_ops(opened() + interleaved(requests, replies))
    assert [(o.op, o.path, o.path2, o.status) for o in found] == [
        ("mkdir", "/d", None, "ok"),
        ("rename", "/d/a", "/d/b", "ok"),
        ("remove", "/d/b", None, "permission denied: Permission denied"),
        ("rmdir", "/d", None, "ok"),
        ("setstat", "/d/c", None, "ok"),
        ("symlink", "/d/link", "target", "ok"),
        ("rename", "/x", "/y", "ok"),
        ("hardlink", "/y", "/z", "ok"),
        ("stat", "/etc/shadow", None, "ok"),
        ("extension", "", None, "ok"),
    ]
    assert found[0].detail == {"mode": "0750"}
    assert found[4].detail == {"mode": "0600"}


def test_a_refused_open_is_reported() -> None:
    stream = [*opened(), ("c", w.open_(1, "/root/x", 26)), ("s", w.status(1, 3, "denied"))]
    [refused] = sftp_ops(stream)
    assert (refused.op, refused.path, refused.status) == (
        "open",
        "/root/x",
        "permission denied: denied",
    )


def test_a_file_never_closed_is_reported_at_the_end() -> None:
    requests, replies = w.upload("/tmp/cut", b"x" * 1000)
    [cut] = sftp_ops(opened() + interleaved(requests[:-1], replies[:-1]))
    assert (cut.op, cut.status, cut.size) == ("upload", "never closed", 1000)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ([("c", w.packet(1, w.u32(4)))], "version 4"),
        ([("c", w.INIT), ("s", w.packet(2, w.u32(6)))], "version 6"),
        ([("c", w.u32(50_000_000) + b"x")], "packet of 50000000 bytes"),
        ([("c", w.INIT), ("c", w.path_request(13, 1, "/x")[:-2])], "inside a packet"),
        ([("c", w.INIT), ("s", w.VERSION), ("s", w.status(77))], "not waiting"),
        ([("c", w.path_request(13, 1, "/x"))], "before the version"),
        ([("c", w.INIT), ("s", w.VERSION), ("c", w.packet(13, w.u32(1), w.u32(9)))], "inside"),
    ],
)
def test_a_broken_stream_is_a_typed_error(stream: Stream, message: str) -> None:
    with pytest.raises(TransferParseError, match=message):
        sftp_ops(stream)


def test_an_unknown_packet_is_skipped_by_its_length_and_reported() -> None:
    """Issue 32, #8: one packet of type 250 made the session unreadable and hid every
    later upload. OpenSSH's sftp-server skips it; so does the parser, reporting it."""
    first, second = os.urandom(70_000), os.urandom(5_000)
    stream = [
        *opened(),
        *w.upload_stream("/srv/first.bin", first, first_id=1),
        ("c", w.packet(250, w.u32(100), b"\xff" * 20)),  # answered: operation unsupported
        ("s", w.status(100, 8, "Operation unsupported")),
        ("c", w.packet(250, w.u32(101), b"junk")),  # never answered
        ("c", w.packet(250)),  # not even an id
        *w.upload_stream("/srv/second.bin", second, first_id=200),
    ]
    found = sftp_ops(stream, pieces=1)
    assert [(op.op, op.path, op.status) for op in found] == [
        ("upload", "/srv/first.bin", "ok"),
        ("unknown", "", "unknown packet type 250, 25 bytes: skipped"),
        ("unknown", "", "unknown packet type 250, 9 bytes: skipped"),
        ("unknown", "", "unknown packet type 250, 1 byte: skipped"),
        ("upload", "/srv/second.bin", "ok"),
    ]
    assert found[1].detail == {"packet_type": 250, "packet_bytes": 25}
    assert found[4].sha256 == hashlib.sha256(second).hexdigest()


def test_a_broken_stream_still_reports_the_file_it_was_moving() -> None:
    """Issue 32, #8: what was understood before a parse failure is never hidden: a
    file whose close was not answered yet is reported, whole, saying why."""
    content = os.urandom(50_000)
    requests, replies = w.upload("/srv/cut.bin", content)
    broken = w.packet(13, w.u32(999))  # a REMOVE without its path
    stream = [
        *opened(),
        *interleaved(requests[:-1], replies[:-1]),
        ("c", requests[-1] + broken),
    ]
    found: list[FileOperation] = []
    with pytest.raises(TransferParseError, match="ends inside one of its fields"):
        feed(SftpParser(found.append), stream)
    [cut] = found
    assert (cut.op, cut.path, cut.size) == ("upload", "/srv/cut.bin", 50_000)
    assert cut.sha256 == hashlib.sha256(content).hexdigest()
    assert cut.status.startswith("unknown: the stream could not be read further (a packet ends")


def test_requests_waiting_for_answers_are_bounded() -> None:
    flood = w.joined(w.path_request(17, i, "/x") for i in range(MAX_PENDING + 1))
    with pytest.raises(TransferParseError, match="wait for an answer"):
        sftp_ops([*opened(), ("c", flood)])


def test_a_hundred_thousand_small_files_in_bounded_memory() -> None:
    count = 0

    def counted(_operation: FileOperation) -> None:
        nonlocal count
        count += 1

    parser = SftpParser(counted)
    parser.client(0, w.INIT)
    parser.server(0, w.VERSION)

    def files(first: int, last: int) -> None:
        for i in range(first, last):
            for side, part in w.upload_stream(f"/srv/many/f{i}", b"%d" % i, first_id=i * 3):
                (parser.client if side == "c" else parser.server)(i, part)

    files(0, 100_000)
    # Whatever a file leaves behind would show over the next 5,000 (traced: slow).
    tracemalloc.start()
    try:
        files(100_000, 105_000)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    parser.finish(105_000)
    assert count == 105_000
    assert kept < 64 << 10, f"{kept} bytes kept over 5,000 files"


@pytest.mark.slow
def test_a_two_gigabyte_file_in_bounded_memory() -> None:
    piece = os.urandom(255 * 1024)
    size = 2 << 30
    name = b"big"
    expected = hashlib.sha256()
    found_ops: list[FileOperation] = []
    parser_ = SftpParser(found_ops.append)
    parser_.client(0, w.INIT)
    parser_.server(0, w.VERSION)
    parser_.client(0, w.open_(1, "/dump.sql", 0x1A))
    parser_.server(0, w.handle(1, name))
    tracemalloc.start()
    try:
        for number, offset in enumerate(range(0, size, len(piece))):
            chunk = piece[: min(len(piece), size - offset)]
            expected.update(chunk)
            parser_.client(number, w.write(number + 2, name, offset, chunk))
            parser_.server(number, w.status(number + 2))
        parser_.client(0, w.close(1, name))
        parser_.server(0, w.status(1))
        parser_.finish(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [upload] = found_ops
    assert (upload.size, upload.sha256) == (size, expected.hexdigest())
    assert peak < 16 << 20, f"peak {peak} bytes"


# -- SCP -----------------------------------------------------------------------------


def scp_ops(command: str, stream: Stream) -> list[FileOperation]:
    found: list[FileOperation] = []
    mode = scp_mode(command)
    assert mode is not None
    feed(ScpParser(mode, found.append), stream)
    return found


def test_an_scp_upload_of_a_tree_with_times() -> None:
    a, b = os.urandom(5000), b""
    sent = [
        b"T1700000000 0 1700000001 0\n",
        b"D0755 0 tree\n",
        b"C0644 5000 a.bin\n" + a + b"\0",
        b"D0700 0 sub\n",
        b"C0600 0 empty\n" + b + b"\0",
        b"E\n",
        b"E\n",
    ]
    stream: Stream = [("s", b"\0")]
    for line in sent:
        stream += [("c", line), ("s", b"\0")]
    found = scp_ops("scp -r -p -t /backup/", stream)
    assert [(o.op, o.path, o.size) for o in found] == [
        ("mkdir", "/backup/tree", None),
        ("upload", "/backup/tree/a.bin", 5000),
        ("mkdir", "/backup/tree/sub", None),
        ("upload", "/backup/tree/sub/empty", 0),
    ]
    assert found[1].sha256 == hashlib.sha256(a).hexdigest()
    assert found[0].detail == {"mode": "0755", "mtime": 1700000000, "atime": 1700000001}


def test_an_scp_download_and_the_targets_complaints() -> None:
    content = b"secret\n" * 100
    stream: Stream = [
        ("c", b"\0"),
        ("s", b"C0640 700 db.conf\n"),
        ("c", b"\0"),
        ("s", content + b"\0"),
        ("c", b"\0"),
        ("s", b"\x01scp: /etc/nope: No such file or directory\n"),
    ]
    found = scp_ops("scp -f /etc/db.conf /etc/nope", stream)
    assert [(o.op, o.path, o.status) for o in found] == [
        ("download", "/etc/db.conf", "ok"),
        ("error", "/etc/nope", "scp: /etc/nope: No such file or directory"),
    ]
    assert found[0].sha256 == hashlib.sha256(content).hexdigest()


def test_an_scp_upload_the_target_refuses_before_its_bytes() -> None:
    stream: Stream = [
        ("s", b"\0"),
        ("c", b"C0644 3 x\n"),
        ("s", b"\x01scp: /ro/x: Permission denied\n"),
        ("c", b"C0644 2 y\n"),
        ("s", b"\0"),
        ("c", b"ok\0"),
        ("s", b"\0"),
    ]
    found = scp_ops("scp -d -t /ro", stream)
    assert [(o.op, o.path, o.status, o.size) for o in found] == [
        ("upload", "/ro/x", "scp: /ro/x: Permission denied", None),
        ("upload", "/ro/y", "ok", 2),
    ]


@pytest.mark.parametrize(
    ("command", "mode"),
    [
        ("scp -t /tmp", ScpMode("sink", "/tmp", frozenset("t"))),
        ("scp -r -p -f '/srv/a dir'", ScpMode("source", "/srv/a dir", frozenset("rpf"))),
        ("/usr/bin/scp -v -t -- x", ScpMode("sink", "x", frozenset("vt-"))),
        ("scp -t -f x", None),
        ("scp x y", None),
        ("ls -t", None),
        ("scp 'unclosed", None),
    ],
)
def test_which_commands_are_scp(command: str, mode: ScpMode | None) -> None:
    assert scp_mode(command) == mode


def test_which_sessions_hold_transfers() -> None:
    assert transfer_protocol("subsystem", "sftp") == "sftp"
    assert transfer_protocol("exec", "scp -t /x") == "scp"
    assert transfer_protocol("exec", "ls") is None
    assert transfer_protocol("shell", "") is None
    assert transfer_protocol("subsystem", "netconf") is None


# -- garbage ------------------------------------------------------------------------


def _sample_sftp() -> Stream:
    rename = [("c", w.path_request(18, 50, "/a", "/b")), ("s", w.status(50))]
    return opened() + w.upload_stream("/a", os.urandom(3000), piece=1000) + rename


def _sample_scp() -> Stream:
    return [("s", b"\0"), ("c", b"D0755 0 d\n"), ("s", b"\0"), ("c", b"C0644 4 f\nabcd\0")]


def _mutated(stream: Stream, data: st.DataObject) -> Stream:
    flat = [bytearray(part) for _, part in stream]
    for _ in range(data.draw(st.integers(1, 6))):
        target = flat[data.draw(st.integers(0, len(flat) - 1))]
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "drop"]))
        if not target and action != "insert":
            continue
        at = data.draw(st.integers(0, max(len(target) - 1, 0)))
        if action == "flip":
            target[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del target[at:]
        elif action == "insert":
            target[at:at] = data.draw(st.binary(min_size=1, max_size=16))
        else:
            del target[at : at + data.draw(st.integers(1, 8))]
    return [(side, bytes(part)) for (side, _), part in zip(stream, flat, strict=True)]


def _only_typed_errors(parse: Callable[[], object]) -> None:
    with contextlib.suppress(TransferParseError):
        parse()


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_sftp_streams_give_only_typed_errors(data: st.DataObject) -> None:
    stream = _mutated(_sample_sftp(), data)
    _only_typed_errors(lambda: sftp_ops(stream))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_scp_streams_give_only_typed_errors(data: st.DataObject) -> None:
    stream = _mutated(_sample_scp(), data)
    _only_typed_errors(lambda: scp_ops("scp -r -t /x", stream))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("cs"), st.binary(max_size=300)), max_size=12))
def test_random_bytes_give_only_typed_errors(stream: Stream) -> None:
    _only_typed_errors(lambda: sftp_ops(list(stream)))
    _only_typed_errors(lambda: scp_ops("scp -f /x", list(stream)))
