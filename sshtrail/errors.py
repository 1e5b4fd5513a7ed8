"""The error hierarchy shared by every sshtrail process.

One base, split in two: a :class:`RetryableError` may succeed if the same
operation is tried again later (a broker or database that is away); an
:class:`InvalidError` never will (a malformed message, a bad config value).
Library errors are translated into these once, at the adapter that calls the
library, and carry the data an operator needs to find the cause.
"""

from __future__ import annotations

from pathlib import Path


class SshtrailError(Exception):
    """Base of every error sshtrail raises on purpose."""


class RetryableError(SshtrailError):
    """The operation failed for a reason that may go away (network, outage)."""


class InvalidError(SshtrailError):
    """The input is wrong and retrying it will not help."""


class MessageError(InvalidError):
    """A Kafka message that cannot be taken as it is: dead-lettered, never retried.

    ``session_id`` and ``seq`` are filled in when known; ``partition`` and
    ``offset`` by the consumer that received the message.
    """

    def __init__(
        self,
        reason: str,
        *,
        session_id: str | None = None,
        seq: int | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.session_id = session_id
        self.seq = seq
        self.partition = partition
        self.offset = offset
        super().__init__(reason)

    def __str__(self) -> str:
        where = [
            f"{name}={value}"
            for name, value in (
                ("session", self.session_id),
                ("seq", self.seq),
                ("partition", self.partition),
                ("offset", self.offset),
            )
            if value is not None
        ]
        return f"{self.reason} ({', '.join(where)})" if where else self.reason


class WireError(MessageError):
    """A Kafka message is not a valid sshtrail chunk."""


class UnstorableError(MessageError):
    """A valid chunk that a consumer's database refuses as it is (a data or
    integrity error): the message's own fault, so it is quarantined, not retried."""


class OffsetsLost(MessageError):
    """Offsets of a partition the broker deleted (retention) before this group read them.

    Not a message but the absence of some: the group records it in the
    dead-letter topic like a message it passed without storing, so that
    ``sshtrail completeness`` reports the loss long after it happened."""

    def __init__(self, partition: int, first: int, end: int) -> None:
        self.span = (partition, first, end)
        super().__init__(
            f"DATA-LOSS: offsets {first}..{end - 1} were deleted by the broker before "
            "this group read them",
            partition=partition,
            offset=first,
        )


class ConfigError(InvalidError):
    """A configuration file, environment variable or option has a bad value.

    The message names the key (dotted path) and where it came from, so the
    person reading it knows exactly which line to fix.
    """

    def __init__(self, message: str, *, key: str | None = None, source: Path | str | None = None):
        self.key = key
        self.source = source
        parts = [str(source)] if source is not None else []
        if key:
            parts.append(key)
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class BrokerError(RetryableError):
    """The Kafka broker could not be reached or refused an operation.

    ``fatal`` means the client that raised it can never be used again (an
    idempotent producer that lost its sequence, a fenced consumer): build a
    new one; ``reason`` is the client's own words, for a caller that says in
    its message what it was doing. Raised by the adapters of
    :mod:`sshtrail.kafka` only.
    """

    def __init__(self, message: str, *, fatal: bool = False, reason: str | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        #: The client's own words for the cause, without our context.
        self.reason = reason or message


class TopicMissing(BrokerError):
    """The topic asked for does not exist on the broker (which answered)."""


class QueueFull(BrokerError):
    """The client's local queue is full: serve its reports, then try again."""


class CommitFailed(BrokerError):
    """The group coordinator refused a commit (typically a rebalance in progress):
    the messages are delivered again to the partition's next owner."""


class MessageTooLarge(InvalidError):
    """The client or the broker refuses a message for its size."""


class DatabaseError(RetryableError):
    """The database could not be reached or a statement failed transiently."""


class NotFound(InvalidError):
    """No session, or more than one, matches what the auditor typed (exit status 3)."""


class NotSetUp(SshtrailError):
    """A reading command found no database where the settings say it is."""


class SchemaMismatch(SshtrailError):
    """The database is not at the schema this version needs: ``sshtrail db upgrade``.

    Not retried: waiting would not change it, and a member that waited would
    look healthy while storing nothing."""
