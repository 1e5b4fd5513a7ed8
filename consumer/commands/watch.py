"""``sshtrail watch``: a session followed live from Kafka."""

from __future__ import annotations

import argparse
import contextlib
import sys
import uuid

from sqlalchemy.exc import OperationalError, ProgrammingError

from consumer.watch import follow
from sshtrail import queries
from sshtrail.commandkit.signals import stop_on_signals
from sshtrail.db import existing_engine
from sshtrail.errors import InvalidError
from sshtrail.events import End, Output, Start
from sshtrail.kafka.adapters import topic_reader
from sshtrail.provenance import provenance
from sshtrail.settings import Settings
from sshtrail.termfilter import TerminalFilter
from sshtrail.textsafe import visible


def run(args: argparse.Namespace, settings: Settings) -> int:
    session_id = _session_id(settings, args.session)
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
