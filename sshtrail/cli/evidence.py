"""``sshtrail verify`` and ``sshtrail export``: the recording as evidence, from the stored bytes.

``export --transfer N`` takes one transferred file's bytes out of the
recording (sshtrail/filetransfers.py), when the settings allow it.

Verification recomputes the hash chain from the chunks exactly as stored
and checks the end chunk's signature against the trusted gateway keys:
``--trust KEYFILE`` (repeatable), else the signing key of the gateway in
these settings (``gateway.signing_key``, ``<state_dir>/gateway/...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from sqlalchemy.engine import Connection, RowMapping

from sshtrail import queries, tombstone, transferqueries
from sshtrail.chain import Status, Verdict
from sshtrail.commandkit.output import print_json
from sshtrail.commandkit.reading import store, stored_session
from sshtrail.errors import InvalidError, NotFound
from sshtrail.events import Event
from sshtrail.exports import Format, chunk_events, export_lines
from sshtrail.settings import Settings
from sshtrail.textsafe import local_time, visible
from sshtrail.verification import fingerprint, trusted_gateway_keys, verify_session

T = TypeVar("T")


def verdict_json(verdict: Verdict, keys: Mapping[bytes, str]) -> dict[str, Any]:
    """A verdict as every command's ``--json`` shows it (docs/operations.md)."""
    signer = verdict.signer
    return {
        "status": verdict.status.value,
        "detail": verdict.detail,
        "seq": verdict.seq,
        "gaps": [list(g) for g in verdict.gaps],
        "signer": fingerprint(signer) if signer else None,
        "signer_trusted_as": keys.get(signer) if signer else None,
        # Who ended a session whose gateway stopped unexpectedly: "gateway" (signed),
        # "store" (not signed); null for every other session.
        "interrupted": verdict.interrupted,
    }


def refused_json(rows: Sequence[RowMapping]) -> list[dict[str, Any]]:
    """Chunks refused on arrival (:func:`~sshtrail.queries.refused_chunks`) as ``--json``
    shows them."""
    return [
        {
            "seq": row["seq"],
            "partition": row["partition"],
            "offset": row["offset"],
            "reason": row["reason"],
            "received_at": row["received_at"].isoformat(),
        }
        for row in rows
    ]


def refused_lines(rows: Sequence[RowMapping]) -> list[str]:
    """The same for a terminal: one line per chunk, safe to print."""
    return [
        f"  refused chunk {row['seq']} (partition {row['partition']}, offset "
        f"{row['offset']}, {local_time(row['received_at'])}): {visible(row['reason'])}"
        for row in rows
    ]


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.cross_check:
        from sshtrail.cli import crosscheck  # noqa: PLC0415 (only when asked for)

        return crosscheck.run(args, settings)
    if not args.all:  # a deleted session is told from its tombstone, no gateway key needed
        with store(settings) as conn:
            gone = _deleted(conn, args.session)
        if gone is not None:
            return _verify_deleted(gone, settings, args.json)
    keys = trusted_gateway_keys(settings, args.trust)
    results = []
    refused = {}
    with store(settings) as conn:
        ids = queries.all_session_ids(conn) if args.all else [queries.resolve(conn, args.session)]
        for session_id in ids:
            row = queries.session(conn, session_id)
            results.append((session_id, verify_session(conn, row, keys)))
            refused[session_id] = queries.refused_chunks(conn, session_id)
    if args.json:
        print_json(
            [
                {
                    "session": str(sid),
                    **verdict_json(v, keys),
                    "refused": refused_json(refused[sid]),
                }
                for sid, v in results
            ]
        )
    else:
        for session_id, verdict in results:
            tampered = verdict.status is Status.TAMPERED and verdict.seq is not None
            where = f" (chunk {verdict.seq})" if tampered else ""
            signer = ""
            if verdict.signer is not None:
                trusted_as = keys.get(verdict.signer)
                signer = f"  signed by {fingerprint(verdict.signer)}"
                signer += f" ({trusted_as})" if trusted_as else " (not a trusted key)"
            print(f"{session_id}  {verdict.status.value}{where}  {visible(verdict.detail)}{signer}")
            for line in refused_lines(refused[session_id]):
                print(line)
        failed = sum(v.status is not Status.OK for _, v in results)
        if args.all:
            print(
                f"{len(results)} sessions, {len(results) - failed} ok, {failed} not ok",
                file=sys.stderr,
            )
    return 0 if all(v.status is Status.OK for _, v in results) else 1


def _deleted(conn: Connection, prefix: str) -> dict[str, Any] | None:
    """The tombstone of the deleted session ``prefix`` names, when no stored session
    has that id and exactly one tombstone does."""
    try:
        queries.resolve(conn, prefix)
    except NotFound:
        found = tombstone.find(conn, prefix)
        if len(found) == 1:
            return found[0]
    return None


def _verify_deleted(row: dict[str, Any], settings: Settings, as_json: bool) -> int:
    """A deleted session's answer: what deleted it, and the chain it had, from its signed
    tombstone. Exit 0 when the tombstone's signature holds and the chain had been intact."""
    checked = tombstone.check(row, tombstone.public_key(settings))
    if as_json:
        print_json([{"status": "deleted", **tombstone.as_json(row, checked)}])
    else:
        line = f"{row['session_id']}  deleted  {visible(tombstone.describe(row))}"
        print(line if checked.ok else f"{line}  TOMBSTONE NOT VALID: {checked.problem}")
    return 0 if checked.ok and row["verdict"] == Status.OK.value else 1


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    if args.output is not None and args.output.exists() and not args.force:
        raise InvalidError(f"{args.output} exists; --force replaces it")
    if args.transfer is not None:
        if args.session is not None or args.format is not None:
            raise InvalidError("--transfer N takes no session id and no --format")
        return export_transfer(args, settings)
    if args.session is None or args.format is None:
        raise InvalidError("give a session id and --format (or --transfer N)")
    stored = stored_session(settings, args.session)
    _write(args.output, lambda out: _export(args.format, stored, out))
    if args.output is not None:
        print(f"exported session to {args.output} ({args.format})", file=sys.stderr)
    return 0


def export_transfer(args: argparse.Namespace, settings: Settings) -> int:
    """A transferred file's bytes out of the recording (``transfers.content_export``)."""
    if not settings.transfers.content_export:
        raise InvalidError(
            "exporting transferred files is off; an administrator turns it on with "
            "transfers.content_export = true"
        )
    if args.output is None and sys.stdout.isatty():
        raise InvalidError("a file's bytes are not for a terminal: use -o FILE or a pipe")
    # Imported here, not with the module: the parsers are not for verify's or the
    # auditor listings' start-up (docs/performance.md, "CLI start-up").
    from sshtrail.filetransfers import extract  # noqa: PLC0415

    with store(settings) as conn:
        transfer = transferqueries.stored_transfer(conn, args.transfer)
        limit = settings.transfers.content_max_mb << 20
        operation = _write(args.output, lambda out: extract(conn, transfer, out, limit))
    if operation.sha256 is None:
        print(
            f"sshtrail: the file did not move whole; bytes {operation.ranges or 'none'} did, "
            "the rest is zeros",
            file=sys.stderr,
        )
    if args.output is not None:
        print(
            f"exported {operation.op} of {visible(operation.path)} to {args.output} "
            f"({operation.bytes} bytes moved, sha256 {operation.sha256 or '-'})",
            file=sys.stderr,
        )
    return 0


def _write(output: Path | None, write: Callable[[BinaryIO], T]) -> T:
    """``write`` to ``output`` (stdout when None). A file is written beside itself and
    renamed: an interrupted export leaves no half file."""
    if output is None:
        return write(sys.stdout.buffer)
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as out:
            result = write(out)
        partial.replace(output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InvalidError(f"cannot write {output}: {exc.strerror}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return result


def _export(kind: Format, stored: list[tuple[int, bytes]], out: BinaryIO) -> None:
    for piece in export_lines(kind, stored, _skipped):
        out.write(piece)
    out.flush()


def _skipped(seq: int, why: str) -> None:
    print(f"sshtrail: chunk {seq} does not decode, skipped: {why}", file=sys.stderr)


def events_of(stored: list[tuple[int, bytes]]) -> Iterator[Event]:
    """The events of stored chunks in order; a chunk that does not decode is reported."""
    for _seq, event in chunk_events(stored, _skipped):
        yield event
