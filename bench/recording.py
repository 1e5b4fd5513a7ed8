"""The recording path's own cost per MB, in one process: recorder → chain → spool.

What the gateway spends recording bulk output, without SSH, Kafka or other
processes: SSH-sized packets of random bytes go through a :class:`Recorder`
into 64 KiB chunks, encoded, hash-chained and appended to a real spool file,
as the gateway's writer thread does. Each stage is also timed alone, and the
baseline is copying the same bytes once.

    python -m bench.recording [--mb 512]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import zlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.scratch import scratch
from producer.recorder import Recorder
from producer.spool import Spool
from sshtrail.events import Output, Start
from sshtrail.ids import uuid7
from sshtrail.wire import encode_chunk

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    args = parser.parse_args()
    packets = args.mb * 1_000_000 // PACKET
    packet = os.urandom(PACKET)
    chunk = os.urandom(CHUNK)
    chunks = packets * PACKET // CHUNK
    total = packets * PACKET
    spool = Spool(scratch("bench-recording-"), 64 << 20, 0.1)
    spool.open()
    key = str(uuid7()).encode()

    def through_recorder() -> None:
        def submit(_sid: object, encode: Callable[[], bytes], _final: bool, _size: int) -> None:
            spool.append(key, encode())  # what the writer thread does, inline here

        sink = type("Sink", (), {"submit": staticmethod(submit)})()
        start = Start(
            0, "alice", "127.0.0.1:1", "t1", "127.0.0.1", 22, "root", "gw", "", 0, 0, time.time_ns()
        )
        recorder = Recorder(
            start,
            Ed25519PrivateKey.generate(),
            sink,
            lambda _d, _c: _Timer(),
            session_id=uuid7(),
            max_bytes=CHUNK,
            max_delay_s=0.1,
            echo_window_s=None,
        )
        for _ in range(packets):
            recorder.output(packet)
        recorder.close("done")

    sid = uuid7()
    stages = {
        "baseline: copy the bytes once": lambda: [bytearray(chunk) for _ in range(chunks)],
        "MessagePack encoding": lambda: [
            encode_chunk(sid, 1, b"\x01" * 32, [Output(0, chunk)]) for _ in range(chunks)
        ],
        "SHA-256 (hash chain)": lambda: [hashlib.sha256(chunk).digest() for _ in range(chunks)],
        "CRC-32 (spool record)": lambda: [zlib.crc32(chunk) for _ in range(chunks)],
        "spool append (CRC + writev)": lambda: [spool.append(key, chunk) for _ in range(chunks)],
        "all of it: recorder → chain → spool": through_recorder,
    }
    print(
        f"{total / 1e6:,.0f} MB of output in {PACKET}-byte packets, {CHUNK // 1024} KiB chunks"
        " (CPU ms per MB):"
    )
    baseline = 0.0
    for name, run in stages.items():
        cost = per_mb(total, run)
        baseline = baseline or cost
        print(f"  {name:<38} {cost:6.2f}   ({cost / baseline:5.1f}x the copy)")
    spool.close()


if __name__ == "__main__":
    main()
