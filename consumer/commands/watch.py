"""``sshtrail watch``: a session followed live from Kafka; with ``--moderate``, as one of
its moderators (docs/moderation.md): a join, a heartbeat every second while watching, a
leave at the end, each signed with the control key; the join and the leave go to the
access log."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
import threading
import uuid
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError, ProgrammingError

from consumer.moderation import PresenceSender
from consumer.watch import follow
from consumer.web import access
from sshtrail import control, queries
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.db import existing_engine
from sshtrail.errors import BrokerError, InvalidError
from sshtrail.events import End, Output, Start
from sshtrail.kafka.adapters import topic_reader
from sshtrail.provenance import provenance
from sshtrail.settings import Settings
from sshtrail.termfilter import TerminalFilter
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    session_id = _session_id(settings, args.session)
    if args.moderate:
        with _moderating(settings, session_id, str(args.as_ or getpass.getuser())):
            return _watch(args, settings, session_id)
    if args.as_:
        raise InvalidError("--as names a moderator: give it with --moderate")
    return _watch(args, settings, session_id)


@contextlib.contextmanager
def _moderating(settings: Settings, session_id: uuid.UUID, name: str) -> Iterator[None]:
    """Present as moderator ``name`` while the block runs: joined (the broker took it,
    or :class:`~sshtrail.errors.BrokerError`), then ``here`` every heartbeat, then left."""
    groups = next((a.groups for a in settings.auditors if a.name == name), [])
    sender = PresenceSender(settings, "terminal")
    session = str(session_id)
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.wait(control.HEARTBEAT_S):
            with contextlib.suppress(BrokerError):  # the next one may get through
                sender.send(session, name, groups, "here")

    heart = threading.Thread(target=beat, name="heartbeat", daemon=True)
    try:
        sender.send(session, name, groups, "join", wait_s=10.0)
        heart.start()  # at once: the gateway counts a silent moderator as gone
        # In the access log before the moderator is told: a moderation said to have
        # begun is one the log holds, even if it is ended at once.
        access.record_from_cli(settings, name, "moderate", session_id, "joined")
        print(
            f"moderating {session_id} as {name}: the gateway counts you if the session's "
            "[[moderation]] table names you",
            file=sys.stderr,
            flush=True,
        )
        yield
    finally:
        stopped.set()
        if heart.is_alive():
            heart.join(timeout=2 * control.HEARTBEAT_S)
            try:
                sender.send(session, name, groups, "leave", wait_s=5.0)
            except BrokerError as exc:
                print(
                    f"sshtrail: the leave was not sent ({exc}); the gateway counts you as "
                    f"gone {control.PRESENCE_TTL_S:g} s after the last heartbeat",
                    file=sys.stderr,
                )
            access.record_from_cli(settings, name, "moderate-end", session_id, "left")
        sender.close()


def _watch(args: argparse.Namespace, settings: Settings, session_id: uuid.UUID) -> int:
    out = sys.stdout.buffer
    screen = None if args.raw else TerminalFilter()
    print(f"watching {session_id}; Ctrl-C stops", file=sys.stderr, flush=True)
    reader = topic_reader(settings, "watch")
    try:
        with stop_on_signals() as stop, contextlib.closing(reader):
            chunks_of = provenance(settings, "watch")
            events = follow(
                reader, settings.kafka.topic, session_id, lambda: stop.received, chunks_of
            )
            for event in events:
                if isinstance(event, Start):
                    print(
                        f"{visible(event.operator)}@{visible(event.target)} from "
                        f"{visible(event.client)}",
                        file=sys.stderr,
                        flush=True,
                    )
                elif isinstance(event, Output):
                    out.write(event.data if screen is None else screen.feed(event.data))
                    out.flush()
                elif isinstance(event, End):
                    print(f"\r\nsession ended: {visible(event.reason)}", file=sys.stderr)
    finally:
        if screen is not None:
            out.write(screen.finish())
        out.write(b"\r\n")
        out.flush()
    return 0


def _session_id(settings: Settings, text: str) -> uuid.UUID:
    """A full id as given, or a prefix the store knows."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    engine = existing_engine(settings.database_url, "store")
    try:
        with engine.connect() as conn:
            return queries.resolve(conn, text)
    except (OperationalError, ProgrammingError) as exc:
        raise InvalidError(
            f"{text!r}: give the full session id (the store cannot be read: "
            f"{str(exc.orig).strip()})"
        ) from None
    finally:
        engine.dispose()
