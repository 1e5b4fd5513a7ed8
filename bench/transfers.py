"""How fast the transfer parsers read bulk data, against reading the same bytes.

One upload of ``--mb`` MB as OpenSSH's sftp sends it (32 KiB writes) and one
download (32 KiB reads answered with data), and an ``scp -t`` upload of the
same size; the recorded pieces are cut where SSH channel data would be (not
on packet boundaries). Each is timed three ways on one core, in this process:

* baseline: touch every piece once (``bytes(memoryview(piece))``, a copy);
* SHA-256 of every piece: what the parser cannot avoid, the content hash;
* the parser (``sshtrail/sftp.py``, ``sshtrail/scp.py``), hash included.

And the store group's whole path for the SFTP upload: the session stored as
chunks in a SQLite file, then read back (select, decode) -- the baseline --
against ``consumer.transfers.read_transfers`` (select, decode, parse, write
the row).

    python -m bench.transfers [--mb 256] [--rounds 3]

Goal (issue 18): the parser >= 200 MB/s on bulk data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.scratch import scratch
from consumer import transfers
from consumer.messages import Received
from consumer.store import StoreWriter
from sshtrail import events as ev
from sshtrail import migrate
from sshtrail.db import make_engine
from sshtrail.fileops import FileOperation
from sshtrail.filetransfers import chunk_data
from sshtrail.scp import ScpMode, ScpParser
from sshtrail.sftp import SftpParser
from sshtrail.wire import decode_chunk
from tests.support import sftpwire as w
from tests.support.recordings import events_session

PIECE = 32 * 1024
#: SSH channel data comes in pieces of its own size, not the SFTP packets'.
CHANNEL = 32_759

Stream = list[tuple[str, bytes]]


def cut(side: str, data: bytes) -> Stream:
    return [(side, data[at : at + CHANNEL]) for at in range(0, len(data), CHANNEL)]


def sftp_upload(size: int) -> Stream:
    payload = os.urandom(PIECE)
    name = b"h1"
    writes = b"".join(
        w.write(2 + i, name, offset, payload) for i, offset in enumerate(range(0, size, PIECE))
    )
    answers = b"".join(w.status(2 + i) for i in range(size // PIECE))
    return [
        ("c", w.INIT),
        ("s", w.VERSION),
        ("c", w.open_(1, "/bulk", 0x1A)),
        ("s", w.handle(1, name)),
        *cut("c", writes),
        ("s", answers),
        ("c", w.close(1_000_000, name)),
        ("s", w.status(1_000_000)),
    ]


def sftp_download(size: int) -> Stream:
    payload = os.urandom(PIECE)
    name = b"h1"
    count = size // PIECE
    reads = b"".join(w.read(2 + i, name, i * PIECE, PIECE) for i in range(count))
    data = b"".join(w.data(2 + i, payload) for i in range(count))
    return [
        ("c", w.INIT),
        ("s", w.VERSION),
        ("c", w.open_(1, "/bulk", 1)),
        ("s", w.handle(1, name)),
        ("c", reads),
        *cut("s", data),
        ("c", w.read(count + 2, name, size, PIECE) + w.close(count + 3, name)),
        ("s", w.status(count + 2, 1, "EOF") + w.status(count + 3)),
    ]


def scp_upload(size: int) -> Stream:
    body = os.urandom(PIECE) * (size // PIECE)
    return [("s", b"\0"), ("c", b"C0644 %d bulk\n" % size), ("s", b"\0"), *cut("c", body + b"\0")]


def stored(stream: Stream, folder: Path) -> tuple[str, uuid.UUID]:
    """``stream`` as a recorded SFTP session in a fresh SQLite store: (url, session id)."""
    url = f"sqlite:///{folder / 'store.db'}"
    migrate.upgrade(url)
    chunks: list[list[ev.Event]] = []
    for t, (side, data) in enumerate(stream, start=1):
        for at in range(0, len(data), 60_000):  # as the gateway cuts them (64 KiB chunks)
            piece = data[at : at + 60_000]
            chunks.append([ev.Input(t, piece) if side == "c" else ev.Output(t, piece)])
    sid, messages = events_session(chunks, term="", request=("subsystem", b"sftp"))
    engine = make_engine(url)
    writer = StoreWriter(engine, dt.timedelta(days=1))
    now = dt.datetime.now(dt.UTC)
    for first in range(0, len(messages), 500):
        batch = messages[first : first + 500]
        writer.write([Received(decode_chunk(m), 0, first + i, now) for i, m in enumerate(batch)])
    engine.dispose()
    return url, sid


def store_path(stream: Stream, size: int, rounds: int) -> None:
    folder = scratch("sshtrail-bench-transfers-")
    url, sid = stored(stream, folder)
    engine = make_engine(url)

    def read_back() -> None:
        with engine.connect() as conn:
            for data in chunk_data(conn, sid):
                decode_chunk(data)

    def parse_back() -> None:
        with engine.begin() as conn:
            transfers.read_transfers(conn, sid)

    base, parsed = timed(read_back, rounds), timed(parse_back, rounds)
    engine.dispose()
    mb = size / 1e6
    print(
        f"  store group, sftp upload from SQLite: read + decode {mb / base:6.0f} MB/s   "
        f"read_transfers {mb / parsed:6.0f} MB/s  (x{base / parsed:.2f} of reading back)"
    )


def timed(run: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * (1 << 20)
    found: list[FileOperation] = []

    def parse_sftp(stream: Stream) -> Callable[[], object]:
        def run() -> None:
            found.clear()
            sftp = SftpParser(found.append)
            for side, data in stream:
                (sftp.client if side == "c" else sftp.server)(0, data)
            sftp.finish(0)

        return run

    def parse_scp(stream: Stream) -> Callable[[], object]:
        def run() -> None:
            found.clear()
            scp = ScpParser(ScpMode("sink", "/bulk", frozenset("t")), found.append)
            for side, data in stream:
                (scp.client if side == "c" else scp.server)(0, data)
            scp.finish(0)

        return run

    cases = (
        ("sftp upload", sftp_upload(size), parse_sftp),
        ("sftp download", sftp_download(size), parse_sftp),
        ("scp -t upload", scp_upload(size), parse_scp),
    )
    print(f"{args.mb} MB of file data per case, CPU time on one core, best of {args.rounds}:")
    for name, stream, parse in cases:
        recorded = sum(len(data) for _, data in stream)

        def touch(stream: Stream = stream) -> None:
            for _, data in stream:
                bytes(memoryview(data))

        def digest(stream: Stream = stream) -> None:
            hashed = hashlib.sha256()
            for _, data in stream:
                hashed.update(data)

        base, sha, parsed = (timed(run, args.rounds) for run in (touch, digest, parse(stream)))
        whole = found[-1].size if found else None
        assert whole == size, found[-1:]  # the file moved whole, and was hashed
        mb = recorded / 1e6
        print(
            f"  {name:<14} read {mb / base:8.0f} MB/s   sha256 {mb / sha:6.0f} MB/s   "
            f"parser {mb / parsed:6.0f} MB/s  (x{base / parsed:.2f} of reading, "
            f"x{sha / parsed:.2f} of hashing; goal >= 200 MB/s)"
        )
    store_path(cases[0][1], size, args.rounds)


if __name__ == "__main__":
    main()
