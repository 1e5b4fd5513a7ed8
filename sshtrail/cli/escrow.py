"""``sshtrail escrow-keygen`` and ``sshtrail reveal``: masked input, sealed and opened.

The gateway seals input typed while the terminal did not echo it to the
escrow public key (``sshtrail/escrow.py``); ``reveal`` opens it with the
private key. Every reveal is logged (and, where the access log exists,
written there): who may hold the key, and why, is in docs/security.md.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import Any

from sshtrail import escrow, queries
from sshtrail.cli.evidence import events_of
from sshtrail.commandkit.output import print_json
from sshtrail.commandkit.reading import store
from sshtrail.errors import InvalidError
from sshtrail.events import MaskedInput, SealedInput
from sshtrail.settings import Settings
from sshtrail.textsafe import visible
from sshtrail.timespec import clock

log = logging.getLogger(__name__)


def run_keygen(args: argparse.Namespace, _settings: Settings) -> int:
    if args.path.exists():
        raise InvalidError(f"{args.path} exists: an escrow key is never replaced silently")
    public = escrow.generate(args.path)
    print(f"private key in {args.path} (keep it off the gateway)", file=sys.stderr)
    print("add to the gateway's settings:", file=sys.stderr)
    print(f'[gateway]\nescrow_public_key = "{escrow.public_text(public)}"')
    return 0


def run_reveal(args: argparse.Namespace, settings: Settings) -> int:
    private = escrow.load_private(args.key)
    with store(settings) as conn:
        session_id = queries.resolve(conn, args.session)
        row = queries.session(conn, session_id)
        stored = queries.stored_chunks(conn, session_id)
    log.warning(
        "reveal: masked input of session %s opened by %s with %s%s",
        session_id,
        getpass.getuser(),
        args.key,
        f" ({args.reason})" if args.reason else "",
    )
    found: list[dict[str, Any]] = []
    for event in events_of(stored):
        if isinstance(event, SealedInput):
            opened = escrow.open_sealed(private, event.sealed, session_id, event.t)
            found.append({"t": event.t / 1e9, "bytes": event.count, "text": opened})
        elif isinstance(event, MaskedInput):
            found.append({"t": event.t / 1e9, "bytes": event.count, "text": None})
    if args.json:
        print_json(
            {
                "session": str(session_id),
                "masked_input": [{**item, "text": _text(item["text"])} for item in found],
            }
        )
        return 0
    operator, target = visible(row["operator"] or "?"), visible(row["target"] or "?")
    print(f"session {session_id}  {operator}@{target}  {len(found)} masked inputs")
    for item in found:
        text = _text(item["text"])
        shown = (
            visible(text)
            if text is not None
            else "(not sealed: no escrow key was configured when it was typed)"
        )
        print(f"{clock(item['t']):>12}  {item['bytes']:>5} bytes  {shown}")
    return 0


def _text(data: bytes | None) -> str | None:
    return data.decode("utf-8", "replace") if data is not None else None
