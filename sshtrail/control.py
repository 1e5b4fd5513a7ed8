"""Requests to the gateways, and their answers, on the control topic (``control.topic``).

An auditor's request (terminate a session, lock or unlock an operator) is
published keyed by the session id (``operator:NAME`` for locks), signed with
the control key (``control.signing_key``). Every gateway reads every
partition of the topic with no consumer group -- so the gateway that owns a
session always sees the request for it -- and obeys only requests signed by
a key of ``control.trusted_keys``; a gateway that acted answers with a
:class:`Result` signed by its recording key, which the requester checks
against the trusted gateway keys. Anything else on the topic is refused and
logged: a client that may only produce to the topic cannot end a session.

The Kafka key is bound to the signed body: a request is obeyed only under the
key :func:`key_of` gives for it (its session id, or ``operator:NAME``), so a
copy re-sent under another key -- to another partition, where compaction
would keep it beside the original -- is refused. Which lock or unlock of an
operator is in force is decided by the signing time (``at``), never by the
order messages are read in (``producer/locks.py``): an old copy re-sent
cannot undo a later request. Terminations, and the sessions a lock ends,
are acted on only within :data:`FRESH_S` of now (:func:`fresh`): an old
request re-sent is history, not a request.

Moderated sessions (docs/moderation.md) use it too: a moderator's console or terminal
publishes a :class:`Presence` (join, a heartbeat every :data:`HEARTBEAT_S`, leave),
signed by the control key and keyed ``presence:SESSION/NAME``; the gateway holding the
session counts it only while fresh, and only a later signing time than the last it took
from that moderator (a copy re-sent is refused). That gateway publishes a
:class:`ModerationState` at every change (key ``moderation:SESSION``), which the console
lists as sessions waiting for a moderator.

Four-eyes reviews (docs/policy.md) go both ways on the same topic. A gateway that holds
an operator's command for approval publishes a :class:`ReviewRequest`, signed by its
recording key (key ``review:ID``); an auditor answers with a :class:`ReviewAnswer`,
signed by the control key (key ``answer:ID``); the gateway that holds the review -- and
only it, every other one has no such review -- checks the answer (the right session,
not the operator's own, not already answered) and says what it did with a
:class:`Result` to the answer, and with another to the review itself when the review
ends (approved, denied, timed out, cancelled, ended): a review without that second
result is still open (:mod:`consumer.reviews`).

The value of a message is JSON: ``{"body": base64, "key": base64, "sig":
base64}``, ``sig`` an Ed25519 signature by ``key`` over ``body``, which is
the JSON of one of the structs below (``kind`` tells which).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sshtrail.errors import InvalidError
from sshtrail.keyfiles import create_ed25519, ed25519_public, load_ed25519_private, public_path
from sshtrail.settings import Settings

#: A termination this old (seconds) is history, not a request.
FRESH_S = 120
#: The key prefix of the gateways' answers (which gateways themselves skip).
RESULT_PREFIX = b"result:"
#: The key prefix of the gateways' review requests (which gateways skip too).
REVIEW_PREFIX = b"review:"
#: The key prefix of the auditors' answers to a review.
ANSWER_PREFIX = b"answer:"
#: The key prefix of the gateways' word on a moderated session (waiting, running, ...).
MODERATION_PREFIX = b"moderation:"
#: The key prefix of a moderator's presence in a session (console or terminal).
PRESENCE_PREFIX = b"presence:"
#: What the gateways themselves sign, and read from the topic only to skip.
GATEWAY_PREFIXES = (RESULT_PREFIX, REVIEW_PREFIX, MODERATION_PREFIX)
#: A moderator's console or terminal says "still here" this often (seconds) ...
HEARTBEAT_S = 1.0
#: ... and counts as gone this long after the last word from it reached the gateway.
PRESENCE_TTL_S = 3.5
#: A presence signed further than this from the gateway's clock (either way) is history
#: (or a copy kept and re-sent), not presence.
PRESENCE_FRESH_S = 10
#: The largest control message taken (a request is a few hundred bytes).
MAX_MESSAGE = 16 << 10


class _Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    request_id: str
    #: Nanoseconds since the Unix epoch, when it was made.
    at: int


class Terminate(_Message, tag="terminate", frozen=True):
    session: str  # the session id, as text
    auditor: str
    reason: str


class Lock(_Message, tag="lock", frozen=True):
    operator: str
    auditor: str
    reason: str
    #: Also end the operator's active sessions.
    end_sessions: bool = False


class Unlock(_Message, tag="unlock", frozen=True):
    operator: str
    auditor: str
    reason: str


class ReviewRequest(_Message, tag="review", frozen=True):
    """A gateway holds ``command`` of ``session`` until an auditor approves it
    (the ``review`` action of rule ``rule``); signed by the gateway's recording key."""

    gateway: str
    session: str
    operator: str
    target: str
    rule: str
    #: The rule's message, as the operator was shown it.
    message: str
    command: str
    #: The gateway's wait for an answer (``policy.review_timeout_s``), in seconds.
    timeout_s: float


class ReviewAnswer(_Message, tag="answer", frozen=True):
    """An auditor's answer to review ``review`` (its request id) of ``session``."""

    review: str
    session: str
    approve: bool
    auditor: str
    reason: str


PresenceState = Literal["join", "here", "leave"]


class Presence(_Message, tag="presence", frozen=True):
    """``moderator`` is watching ``session`` to moderate it (``join``, then ``here`` every
    :data:`HEARTBEAT_S`), or stopped (``leave``); signed by the control key (the console
    or ``sshtrail watch --moderate``). The gateway holding the session decides whether
    they count (docs/moderation.md)."""

    session: str
    moderator: str
    #: The console groups the moderator belongs to (``auditors.groups``).
    groups: tuple[str, ...]
    state: PresenceState
    #: ``console`` or ``terminal``.
    via: str


ModerationPhase = Literal["waiting", "running", "paused", "ended", "refused"]


class ModerationState(_Message, tag="moderation", frozen=True):
    """Where a moderated session stands, from the gateway holding it (signed by its
    recording key), published at each change: what the console lists as waiting."""

    gateway: str
    session: str
    operator: str
    target: str
    rule: str
    #: How many moderators must be present.
    needed: int
    #: The moderators present now.
    present: tuple[str, ...]
    phase: ModerationPhase
    #: ``pause`` or ``terminate``: what a moderator's leaving does.
    on_leave: str
    #: While waiting: when the gateway stops waiting and refuses (ns since the epoch).
    deadline: int
    detail: str


Outcome = Literal[
    "done",
    "locked",
    "unlocked",
    # a review's end, and what became of an answer to it
    "approved",
    "denied",
    "timed out",
    "cancelled",
    "ended",
    "unavailable",
    "refused",
]


class Result(_Message, tag="result", frozen=True):
    """A gateway's answer to ``request_id``: what it did."""

    gateway: str
    outcome: Outcome
    detail: str


Request = Terminate | Lock | Unlock | ReviewAnswer
Message = (
    Terminate | Lock | Unlock | ReviewAnswer | Result | ReviewRequest | Presence | ModerationState
)


class _Envelope(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: bytes
    key: bytes
    sig: bytes


class ControlError(InvalidError):
    """A control message that is not to be obeyed; the text says why."""


def new_id() -> str:
    return uuid.uuid4().hex


def now_ns() -> int:
    return time.time_ns()


def key_of(message: Message) -> bytes:
    """The Kafka key: the session id, ``operator:NAME``, ``review:ID`` (a review and
    ``answer:ID`` the answers to it), or the request for answers."""
    if isinstance(message, Terminate):
        return message.session.encode()
    if isinstance(message, Lock | Unlock):
        return f"operator:{message.operator}".encode()
    if isinstance(message, ReviewRequest):
        return REVIEW_PREFIX + message.request_id.encode()
    if isinstance(message, ReviewAnswer):
        return ANSWER_PREFIX + message.review.encode()
    if isinstance(message, Presence):
        return PRESENCE_PREFIX + f"{message.session}/{message.moderator}".encode()
    if isinstance(message, ModerationState):
        return MODERATION_PREFIX + message.session.encode()
    return RESULT_PREFIX + message.request_id.encode()


def encode(message: Message, signer: Ed25519PrivateKey) -> bytes:
    body = msgspec.json.encode(message)
    key = signer.public_key().public_bytes_raw()
    return msgspec.json.encode(_Envelope(body, key, signer.sign(body)))


def fresh(message: Message, now: int) -> bool:
    """Whether ``message`` was signed within :data:`FRESH_S` of ``now`` (ns), either way:
    only then is a termination, or the ending of a locked operator's sessions, done."""
    return abs(now - message.at) <= FRESH_S * 1_000_000_000


def present(message: Presence, now: int) -> bool:
    """Whether a presence was signed within :data:`PRESENCE_FRESH_S` of ``now`` (ns)."""
    return abs(now - message.at) <= PRESENCE_FRESH_S * 1_000_000_000


def decode(data: bytes | None, trusted: Collection[bytes], key: bytes | None = None) -> Message:
    """The message in ``data`` if it is well formed, signed by a ``trusted`` key and,
    when ``key`` (the Kafka key it came under) is given, meant for that key;
    :class:`ControlError` saying why not otherwise."""
    if not data:
        raise ControlError("an empty message")
    if len(data) > MAX_MESSAGE:
        raise ControlError(f"a message of {len(data)} bytes (at most {MAX_MESSAGE})")
    try:
        envelope = msgspec.json.decode(data, type=_Envelope)
    except msgspec.DecodeError as exc:
        raise ControlError(f"not a signed control message: {exc}") from None
    if envelope.key not in trusted:
        raise ControlError("signed by a key that is not trusted (control.trusted_keys)")
    try:
        Ed25519PublicKey.from_public_bytes(envelope.key).verify(envelope.sig, envelope.body)
    except (InvalidSignature, ValueError):
        raise ControlError("the signature does not match the message") from None
    try:
        message: Message = msgspec.json.decode(envelope.body, type=Message)
    except msgspec.DecodeError as exc:
        raise ControlError(f"a signed message of no known kind: {exc}") from None
    if key is not None and key != key_of(message):
        raise ControlError(
            f"signed for key {key_of(message)!r} but sent under {key[:80]!r} "
            "(a copy re-sent under another key)"
        )
    return message


def key_path(settings: Settings) -> Path:
    return settings.state_file(settings.control.signing_key, "control/control_ed25519_key")


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The control key, created when missing (its public half beside it, ``.pub``)."""
    path = key_path(settings)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it just now
            create_ed25519(path, "sshtrail control key")
    return load_ed25519_private(path, "control.signing_key")


def trusted_keys(settings: Settings) -> set[bytes]:
    """The keys whose requests gateways obey: ``control.trusted_keys``, else the public
    half of the control key of these settings (made if missing)."""
    lines = list(settings.control.trusted_keys)
    if not lines:
        signing_key(settings)
        lines = [public_path(key_path(settings)).read_text()]
    return parse_keys(lines, "control.trusted_keys")


def gateway_keys(settings: Settings, own: Collection[bytes]) -> set[bytes]:
    """The gateways whose answers are believed: ``control.gateway_keys`` and ``own``
    (the gateway key of these settings, as ``verify`` trusts it)."""
    return parse_keys(settings.control.gateway_keys, "control.gateway_keys") | set(own)


def parse_keys(lines: Collection[str], setting: str) -> set[bytes]:
    """Raw Ed25519 keys of OpenSSH public key lines (``ssh-ed25519 AAAA... comment``)."""
    return {ed25519_public(line, repr(line[:40]), setting) for line in lines}
