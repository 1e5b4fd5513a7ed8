"""What signing every chunk costs (wire format 4), per chunk, on one core.

The gateway signs each chunk it publishes; the store, the index and the live
view verify each one as it arrives (``sshtrail/provenance.py``). Baseline,
measured in the same run over the same events: the chunk as versions 1 to 3
wrote it (unsigned, but for the end) -- encoding, and decoding alone. The
ratios show what the signature adds to the work each side did already.

    python -m bench.chunk_signing [--chunks N]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sshtrail import events as ev
from sshtrail.ids import uuid7
from sshtrail.provenance import Provenance
from sshtrail.wire import decode_chunk, encode_chunk

#: Chunk payloads: the store benchmark's 1 KiB, and the recorder's 64 KiB bulk chunks.
SIZES = (1024, 65_536)


def per_chunk_us(work: Callable[[], object], count: int) -> float:
    """Microseconds per call, best of three rounds of ``count`` calls."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            work()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    key = Ed25519PrivateKey.generate()
    provenance = Provenance(frozenset({key.public_key().public_bytes_raw()}))
    for size in SIZES:
        measure(size, key, provenance, args.chunks)


def measure(size: int, key: Ed25519PrivateKey, provenance: Provenance, count: int) -> None:
    """Print encode and decode costs of a chunk of ``size`` payload bytes, both ways."""
    sid, prev = uuid7(), b"\x01" * 32
    events = [ev.Output(t=1, data=os.urandom(size))]
    legacy = encode_chunk(sid, 1, prev, events)
    signed = encode_chunk(sid, 1, prev, events, key)
    assert provenance.refusal(decode_chunk(signed)) is None
    rows = [
        (
            "gateway: encode",
            lambda: encode_chunk(sid, 1, prev, events),
            lambda: encode_chunk(sid, 1, prev, events, key),
        ),
        (
            "consumer: decode",
            lambda: decode_chunk(legacy),
            lambda: provenance.refusal(decode_chunk(signed)),
        ),
    ]
    print(f"{size:,} B payload, {len(signed) - len(legacy)} B more per chunk:")
    for name, before, after in rows:
        base, now = per_chunk_us(before, count), per_chunk_us(after, count)
        print(f"  {name:<18} {base:8.1f} us unsigned, {now:8.1f} us signed: ratio {now / base:.2f}")


if __name__ == "__main__":
    main()
