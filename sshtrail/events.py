"""The events a session recording is made of, as typed msgspec structs.

Each event is encoded as a MessagePack array whose first element is the tag
named in the issue and ``docs/wire-format.md`` (``start``, ``i``, ``o`` ...),
followed by the fields in the order declared here. Every event carries ``t``:
nanoseconds since the session started, from a monotonic clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

# Bounds keep a hostile message from smuggling absurd values past the decoder.
U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # msgspec bounds are int64
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Nanos = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ShortText = Annotated[str, msgspec.Meta(max_length=4096)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class _Event(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag_field="kind"
):
    """Common base: every event has ``t``, its offset in ns since session start."""

    t: Nanos


class Start(_Event, tag="start", frozen=True):
    """First event of every session (first event of chunk 0)."""

    operator: ShortText
    client: ShortText  # "address:port" of the operator's SSH client
    target: ShortText  # target name from the gateway policy
    host: ShortText
    port: Port
    user: ShortText  # remote user on the target
    gateway: ShortText  # id of the gateway instance that recorded the session
    term: ShortText  # TERM of the PTY request, "" when no PTY was requested
    cols: U32
    rows: U32
    started_at: Nanos  # wall clock, ns since the Unix epoch, UTC


class Input(_Event, tag="i", frozen=True):
    """Bytes the operator sent to the session."""

    data: bytes


class MaskedInput(_Event, tag="m", frozen=True):
    """Input withheld from the recording because the terminal did not echo it."""

    count: U32  # how many bytes were typed


class SealedInput(_Event, tag="ms", frozen=True):
    """Masked input, kept sealed to the escrow key (wire format version 3).

    ``sealed`` is the typed bytes encrypted to the administrator's escrow
    public key (``sshtrail/escrow.py``): only the holder of its private key can
    read them, with ``sshtrail reveal``."""

    count: U32  # how many bytes were typed
    sealed: bytes


class Output(_Event, tag="o", frozen=True):
    """Bytes the target sent back; ``stderr`` marks the extended-data stream."""

    data: bytes
    stderr: bool = False


class Resize(_Event, tag="r", frozen=True):
    """A window-change request."""

    cols: U32
    rows: U32
    width_px: U32 = 0
    height_px: U32 = 0


ExecMode = Literal["shell", "exec", "subsystem", "direct-tcpip"]


class Exec(_Event, tag="x", frozen=True):
    """What the channel was asked to run: a shell, a command or a subsystem; or, for a
    forwarded TCP connection (wire format version 2), ``direct-tcpip`` to ``host:port``."""

    mode: ExecMode
    #: The exec command or subsystem name, as sent; b"" for a shell; for
    #: ``direct-tcpip`` the destination as ``host:port`` (``[v6]:port``).
    command: bytes


class Env(_Event, tag="env", frozen=True):
    """An environment variable the operator's client sent (wire format version 3).

    ``value`` is None when the name is one the gateway keeps secret
    (``gateway.secret_env``); ``accepted`` says whether it was passed on to
    the target (``targets[].accept_env``)."""

    name: bytes
    value: bytes | None
    accepted: bool


class Notice(_Event, tag="n", frozen=True):
    """Something the gateway did or saw that belongs in the recording (version 3):
    a terminal size it cut down, failed logins before this session, a banner
    shown to the operator, a termination."""

    code: ShortText
    text: ShortText


class Exit(_Event, tag="exit", frozen=True):
    """How the remote side ended: an exit status, or a signal."""

    status: U32 | None = None
    signal: ShortText | None = None
    core_dumped: bool = False
    message: ShortText = ""


class End(_Event, tag="end", frozen=True):
    """Last event of every session. Its chunk carries the gateway's signature."""

    reason: ShortText
    bytes_in: U64
    bytes_out: U64
    chunks: U64  # number of chunks in the session, this one included
    key: PublicKey  # the Ed25519 public key whose signature follows the chunk


Event = (
    Start | Input | MaskedInput | SealedInput | Output | Resize | Exec | Env | Notice | Exit | End
)


def recorded_bytes(events: Iterable[Event]) -> tuple[int, int]:
    """Bytes the operator sent (masked input counted as typed) and bytes sent back to
    them, as ``events`` record them: what a session's end says, for a session whose end
    its gateway never wrote (sshtrail/interrupted.py)."""
    received = sent = 0
    for event in events:
        if isinstance(event, Input):
            received += len(event.data)
        elif isinstance(event, MaskedInput | SealedInput):
            received += event.count
        elif isinstance(event, Output):
            sent += len(event.data)
    return received, sent
