"""The recording path's own cost per MB, in one process: recorder → chain → spool.

What the gateway spends recording bulk output, without SSH, Kafka or other
processes: SSH-sized packets of random bytes go through a :class:`Recorder`
into 64 KiB chunks, encoded, hash-chained and appended to a real spool file,
as the gateway's writer thread does; and split in the two halves of the recorder
process (``gateway.recorder = "process"``): what the relay's process does (the
recorder, the checks, the events encoded once) and what the recorder process does
(chain, signature, spool). Each stage is also timed alone, and the baseline is
copying the same bytes once.

    python -m bench.recording [--mb 512]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import time
import uuid
import zlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.scratch import scratch
from producer.recorder import Recorder
from producer.recorderprocess import FRAME
from producer.spool import Spool
from sshtrail.chain import ChainWriter
from sshtrail.events import Event, Output, Start
from sshtrail.ids import uuid7
from sshtrail.wire import encode_chunk, encode_events, shape_problem

PACKET = 32_759  # what asyncssh hands over per SSH data packet from OpenSSH
CHUNK = 65_536


class _Timer:
    def cancel(self) -> None:
        pass


def per_mb(total_bytes: int, run: Callable[[], object]) -> float:
    """CPU milliseconds per MB for ``run``."""
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1e3 / (total_bytes / 1e6)


class Session:
    """One bulk session's output, recorded the ways the gateway can record it."""

    def __init__(self, packets: int, spool: Spool) -> None:
        self.packets = packets
        self.packet = os.urandom(PACKET)
        self.spool = spool
        self.key = str(uuid7()).encode()
        self.signer = Ed25519PrivateKey.generate()
        self.start = Start(
            0, "alice", "127.0.0.1:1", "t1", "127.0.0.1", 22, "root", "gw", "", 0, 0, time.time_ns()
        )

    def record(self, submit: Callable[[uuid.UUID, int, list[Event], bool, int], None]) -> None:
        """The session's packets through a recorder whose chunks go to ``submit``."""
        sink = type("Sink", (), {"submit": staticmethod(submit)})()
        recorder = Recorder(
            self.start,
            self.signer,
            sink,
            lambda _d, _c: _Timer(),
            session_id=uuid7(),
            max_bytes=CHUNK,
            max_delay_s=0.1,
            echo_window_s=None,
        )
        for _ in range(self.packets):
            recorder.output(self.packet)
        recorder.close("done")

    def through_writer(self) -> None:
        """What the writer thread does (``gateway.recorder = "thread"``), inline."""
        chains: dict[uuid.UUID, ChainWriter] = {}

        def submit(sid: uuid.UUID, _seq: int, events: list[Event], _f: bool, _s: int) -> None:
            chain = chains.setdefault(sid, ChainWriter(sid, self.signer))
            self.spool.append(self.key, chain.encode(events))

        self.record(submit)

    def relay_half(self) -> None:
        """The relay's process with a recorder process: recorder, check, encode once,
        the frame's header."""

        def submit(sid: uuid.UUID, seq: int, events: list[Event], final: bool, _s: int) -> None:
            assert shape_problem(sid, seq, events) is None
            encoded = encode_events(events)
            FRAME.pack(sid.bytes, seq, final, len(encoded))

        self.record(submit)

    def relay_half_sent(self) -> None:
        """The relay's half with each frame written to a local socket, as the gateway
        does, a forked process reading it (its CPU is not counted here)."""
        relay, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for side, option in ((relay, socket.SO_SNDBUF), (reader, socket.SO_RCVBUF)):
            side.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
        pid = os.fork()
        if pid == 0:  # the reader: drain the socket until its end
            relay.close()
            while reader.recv(1 << 20):
                pass
            os._exit(0)
        reader.close()

        def submit(sid: uuid.UUID, seq: int, events: list[Event], final: bool, _s: int) -> None:
            assert shape_problem(sid, seq, events) is None
            encoded = encode_events(events)
            relay.sendmsg([FRAME.pack(sid.bytes, seq, final, len(encoded)), encoded])

        self.record(submit)
        relay.close()
        os.waitpid(pid, 0)

    def both_halves(self) -> None:
        """Both halves, chunk by chunk: the relay's, then the recorder process's (chain,
        signature, spool)."""
        chains: dict[uuid.UUID, ChainWriter] = {}

        def submit(sid: uuid.UUID, seq: int, events: list[Event], final: bool, _s: int) -> None:
            assert shape_problem(sid, seq, events) is None
            encoded = encode_events(events)
            FRAME.pack(sid.bytes, seq, final, len(encoded))
            chain = chains.setdefault(sid, ChainWriter(sid, self.signer))
            self.spool.append(self.key, chain.encode_encoded(seq, encoded, end=final))

        self.record(submit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    args = parser.parse_args()
    packets = args.mb * 1_000_000 // PACKET
    chunk = os.urandom(CHUNK)
    chunks = packets * PACKET // CHUNK
    total = packets * PACKET
    spool = Spool(scratch("bench-recording-"), 64 << 20, 0.1)
    spool.open()
    session = Session(packets, spool)
    sid, key = uuid7(), session.key
    stages = {
        "baseline: copy the bytes once": lambda: [bytearray(chunk) for _ in range(chunks)],
        "MessagePack encoding": lambda: [
            encode_chunk(sid, 1, b"\x01" * 32, [Output(0, chunk)]) for _ in range(chunks)
        ],
        "SHA-256 (hash chain)": lambda: [hashlib.sha256(chunk).digest() for _ in range(chunks)],
        "CRC-32 (spool record)": lambda: [zlib.crc32(chunk) for _ in range(chunks)],
        "spool append (CRC + writev)": lambda: [spool.append(key, chunk) for _ in range(chunks)],
        "all of it: recorder → chain → spool": session.through_writer,
        "recorder process: the relay's half": session.relay_half,
        "  ... and each frame written to a socket": session.relay_half_sent,
        "recorder process: both halves": session.both_halves,
    }
    print(
        f"{total / 1e6:,.0f} MB of output in {PACKET}-byte packets, {CHUNK // 1024} KiB chunks"
        " (CPU ms per MB):"
    )
    baseline = 0.0
    for name, run in stages.items():
        cost = per_mb(total, run)
        baseline = baseline or cost
        print(f"  {name:<40} {cost:6.2f}   ({cost / baseline:5.1f}x the copy)")
    spool.close()


if __name__ == "__main__":
    main()
