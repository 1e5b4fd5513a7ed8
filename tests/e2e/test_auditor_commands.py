"""The auditor commands against sessions recorded through the gateway, stored and indexed."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import pexpect
import pytest
from sqlalchemy import delete, select, update

from consumer.store import CHUNKS
from sshtrail.cli.auditparsers import SESSION_COLUMNS
from sshtrail.db import make_engine
from tests.support.recorded import Recorded

pytestmark = pytest.mark.e2e


def sessions_json(recorded: Recorded, *argv: str) -> list[dict[str, object]]:
    return json.loads(recorded.run("sessions", "--json", *argv).stdout)  # type: ignore[no-any-return]


def test_sessions_lists_them_with_short_ids_and_filters(recorded: Recorded) -> None:
    rows = sessions_json(recorded)
    assert len(rows) == 3
    assert {r["exit_status"] for r in rows} == {3, 0}
    assert {r["status"] for r in rows} == {"closed"}
    assert all(str(r["id"]).replace("-", "").startswith(str(r["short_id"])) for r in rows)
    assert len({r["short_id"] for r in rows}) == 3
    table = recorded.run("sessions").stdout.decode().splitlines()
    assert tuple(table[0].split()) == SESSION_COLUMNS
    assert len(table) == 4
    # every chain verifies; nothing masked, nothing flagged
    assert all(line.split()[-3:] == ["ok", "-", "-"] for line in table[1:])
    assert sum("exec: echo audit-$((6*7)); exit 3" in line for line in table) == 1
    assert sum(" shell " in line for line in table) == 1
    assert sum("exec: echo '\\e]0;pwned" in line for line in table) == 1  # escaped, cut
    assert {(r["request"], r["command"]) for r in rows} >= {
        ("shell", ""),
        ("exec", "echo audit-$((6*7)); exit 3"),
    }
    assert sessions_json(recorded, "--operator", "bob") == []
    assert (
        len(
            sessions_json(
                recorded, "--target", "t1", "--status", "closed", "--since", "1h", "--limit", "2"
            )
        )
        == 2
    )
    bad = recorded.run("sessions", "--since", "yesterday", check=False)
    assert bad.returncode == 2
    assert b"'yesterday' is neither a duration" in bad.stderr


def by_exit(recorded: Recorded, status: int) -> str:
    return next(str(r["short_id"]) for r in sessions_json(recorded) if r["exit_status"] == status)


def test_show_and_search_find_commands_and_never_print_escapes(recorded: Recorded) -> None:
    hostile = next(
        str(r["short_id"])
        for r in sessions_json(recorded)
        if r["exit_status"] == 0 and r["term"] == ""
    )
    shown = recorded.run("show", hostile).stdout
    assert b"\x1b" not in shown
    assert b"\\e]0;pwned\\x07\\e[2J" in shown
    assert b"verification  ok: " in shown
    found = recorded.run("search", "pwned").stdout
    assert b"\x1b" not in found
    assert b"\\e]0;[pwned]\\x07" in found
    assert b"replay: sshtrail replay " in found
    typed = json.loads(recorded.run("search", "typed-line", "--kind", "command", "--json").stdout)
    assert [hit["text"] for hit in typed] == ["echo typed-line-$((2+3))"]
    assert typed[0]["operator"] == "alice"
    output = json.loads(recorded.run("search", "AUDIT-", "--json").stdout)
    assert [(h["kind"], h["text"]) for h in output] == [
        ("command", "echo audit-$((6*7)); exit 3"),
        ("output", "audit-42"),
    ]
    assert output[1]["matches"] == [[0, 6]]
    assert output[1]["certain"]


def test_search_narrows_groups_and_exits_1_on_no_match(recorded: Recorded) -> None:
    sid = by_exit(recorded, 3)
    grouped = recorded.run("search", "audit").stdout.decode()
    header = next(line for line in grouped.splitlines() if line.startswith(sid))
    assert header.endswith("2 hits")
    assert "    +0:00:00  command  echo [audit]-$((6*7)); exit 3" in grouped
    assert f"    replay: sshtrail replay {sid} --from 0:00:00" in grouped
    only = json.loads(recorded.run("search", "e", "--session", sid, "--json").stdout)
    assert only
    assert {hit["session"].replace("-", "")[: len(sid)] for hit in only} == {sid}
    exited = json.loads(recorded.run("search", "e", "--exit", "3", "--json").stdout)
    assert {hit["session"].replace("-", "")[: len(sid)] for hit in exited} == {sid}
    none = recorded.run("search", "no-such-text-anywhere", check=False)
    assert none.returncode == 1
    assert none.stdout == b""
    assert b"(no matches)" in none.stderr
    assert recorded.run("search", "e", "--exit", "-1", check=False).returncode == 2
    ambiguous = recorded.run("show", "0", check=False)
    assert ambiguous.returncode == 3
    said = ambiguous.stderr.decode()
    assert "several sessions start with 0" in said
    # Each candidate, to pick from: full id, who, when.
    candidates = [line for line in said.splitlines() if line.startswith("  ")]
    assert len(candidates) == 3
    assert all("alice@t1" in line and line.endswith(" UTC") for line in candidates)
    assert recorded.run("show", "zz", check=False).returncode == 3
    assert recorded.run("show", "ffffffff", check=False).returncode == 3


def test_output_cut_short_by_its_reader_ends_quietly(recorded: Recorded) -> None:
    """``sshtrail show ID | head -1``: the reader has gone before the command writes."""
    sid = by_exit(recorded, 3)
    for argv in (("sessions",), ("sessions", "--json"), ("search", "e"), ("show", sid)):
        child = subprocess.Popen(
            [sys.executable, "-m", "sshtrail", "--config", str(recorded.config), *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()  # every write of the command meets a closed pipe
        err = child.stderr.read().decode()
        status = child.wait(60)
        assert "Traceback" not in err, (argv, err)
        assert "BrokenPipeError" not in err, (argv, err)
        assert status == 141, (argv, status, err)


def test_export_plays_in_asciinema_with_the_raw_bytes(recorded: Recorded, tmp_path: Path) -> None:
    sid = by_exit(recorded, 3)
    raw = recorded.run("export", sid, "--format", "raw").stdout
    assert raw == b"audit-42\n"
    cast = tmp_path / "session.cast"
    written = recorded.run("export", sid, "--format", "asciicast", "-o", str(cast))
    assert written.stdout == b""
    assert f"exported session to {cast}".encode() in written.stderr
    assert cast.read_bytes() == recorded.run("export", sid, "--format", "asciicast").stdout
    again = recorded.run("export", sid, "--format", "raw", "-o", str(cast), check=False)
    assert again.returncode == 2  # not without --force
    assert b"exists; --force replaces it" in again.stderr
    assert cast.read_bytes().startswith(b'{"version":2')  # untouched
    forced = tmp_path / "forced.raw"
    forced.write_bytes(b"old")
    recorded.run("export", sid, "--format", "raw", "-o", str(forced), "--force")
    assert forced.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forced.raw", "session.cast"]
    played = subprocess.run(
        [sys.executable, "-m", "asciinema", "cat", str(cast)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert played.stdout == raw
    events = [
        json.loads(line)
        for line in recorded.run("export", sid, "--format", "json").stdout.splitlines()
    ]
    assert [e["kind"] for e in events][:2] == ["start", "x"]
    assert events[-1]["kind"] == "end"
    assert recorded.run("replay", sid).stdout == raw  # not a terminal: no delays


def test_verify_reports_each_kind_of_tampering(recorded: Recorded) -> None:
    assert recorded.run("verify", "--all").returncode == 0
    sid = by_exit(recorded, 0)
    full = str(next(r["id"] for r in sessions_json(recorded) if r["short_id"] == sid))
    engine = make_engine(recorded.store_url)
    chunks = CHUNKS
    key = chunks.c.session_id == __import__("uuid").UUID(full)
    with engine.begin() as conn:
        original = dict(conn.execute(select(chunks.c.seq, chunks.c.data).where(key)).all())
    last = max(original)
    assert last >= 2, "the PTY session should span several chunks"

    def verdict(change: object) -> tuple[int, str]:
        with engine.begin() as conn:
            conn.execute(change)  # type: ignore[call-overload]
        result = recorded.run("verify", sid, check=False)
        # Every reader says the same, from the same check (issue 14.5).
        listed = next(r for r in sessions_json(recorded) if r["id"] == full)
        shown = json.loads(recorded.run("show", sid, "--json").stdout)
        status = result.stdout.decode().split("  ")[1].split(" ")[0]
        for document in (listed, shown):
            verification = document["verification"]
            assert isinstance(verification, dict)
            assert verification["status"] == status
            assert document["verified"] is (status == "ok")
        with engine.begin() as conn:  # put it back
            conn.execute(delete(chunks).where(key))
            conn.execute(chunks.insert(), _rows(full, original))
        return result.returncode, result.stdout.decode()

    flipped = bytearray(original[1])
    flipped[-5] ^= 0x01
    code, out = verdict(update(chunks).where(key, chunks.c.seq == 1).values(data=bytes(flipped)))
    # Chunk 1 still decodes; its own signature (wire format 4) no longer verifies, and
    # the signed end vouches back to chunk 2, which does not follow it: chunk 1 is the
    # one altered, and the one blamed.
    assert (code, [part.strip() for part in out.split("  ")[1:3]]) == (
        1,
        ["tampered (chunk 1)", "chunk 1 was altered: its signature does not verify"],
    )
    # The store had stored chunk 1: its absence is tampering, not a gap.
    code, out = verdict(delete(chunks).where(key, chunks.c.seq == 1))
    assert (code, out.split("  ")[1:3]) == (
        1,
        ["tampered (chunk 1)", "chunks 1 were stored and are gone"],
    )
    code, out = verdict(update(chunks).where(key, chunks.c.seq == 1).values(data=original[2]))
    assert (code, out.split("  ")[1]) == (1, "tampered (chunk 1)")
    # The store saw the session end: a missing last chunk is a cut tail, not an open session.
    code, out = verdict(delete(chunks).where(key, chunks.c.seq >= last - 1))
    assert code == 1
    assert out.split("  ")[1] == f"tampered (chunk {last - 1})"
    assert f"tail was cut: chunks {last - 1}-{last} were stored" in out
    assert f"the session end at chunk {last}" in out
    assert recorded.run("verify", sid).returncode == 0  # restored
    engine.dispose()


def _rows(full: str, original: dict[int, bytes]) -> list[dict[str, object]]:
    import datetime as dt
    import uuid

    return [
        {
            "session_id": uuid.UUID(full),
            "seq": seq,
            "t_first": 0,
            "t_last": 0,
            "partition": 0,
            "offset": seq,
            "received_at": dt.datetime.now(dt.UTC),
            "data": data,
        }
        for seq, data in original.items()
    ]


def test_listings_as_csv_with_chosen_columns_and_one_name_for_a_session(
    recorded: Recorded,
) -> None:
    listed = recorded.run("sessions", "--format", "csv", "--columns", "id,status,exit")
    rows = list(csv.reader(io.StringIO(listed.stdout.decode())))
    assert rows[0] == ["ID", "STATUS", "EXIT"]
    assert sorted(r[2] for r in rows[1:]) == ["0", "0", "3"]
    assert all(len(r[0]) == 36 for r in rows[1:])  # full ids: a spreadsheet keeps them
    hits = list(
        csv.reader(io.StringIO(recorded.run("search", "audit", "--format", "csv").stdout.decode()))
    )
    assert hits[0] == ["session", "kind", "t", "at", "operator", "target", "text", "certain"]
    assert {h[6] for h in hits[1:]} >= {"audit-42"}
    bad = recorded.run("sessions", "--columns", "id,nonsense", check=False)
    assert bad.returncode == 2
    assert b"unknown column NONSENSE" in bad.stderr
    # The same name for a session in every JSON document (docs/operations.md).
    listed_json = json.loads(recorded.run("sessions", "--json").stdout)
    found_json = json.loads(recorded.run("search", "audit", "--json").stdout)
    verified_json = json.loads(recorded.run("verify", "--all", "--json").stdout)
    for document in (*listed_json, *found_json, *verified_json):
        uuid.UUID(document["session"])


def test_in_a_narrow_terminal_the_table_fits_and_times_name_their_zone(
    recorded: Recorded,
) -> None:
    def table(columns: int) -> list[str]:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "sshtrail", "--config", str(recorded.config), "sessions"],
            dimensions=(24, columns),
            # COLUMNS would win over the terminal's size (as for ps); pytest-xdist sets it.
            env={**_without(os.environ, "COLUMNS", "LINES"), "TZ": "Asia/Tokyo"},
            timeout=60,
        )
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        return str(child.before.decode()).splitlines()

    narrow = table(90)
    assert narrow[0].startswith("ID")
    assert max(len(line) for line in narrow) <= 90
    assert any("…" in line for line in narrow[1:])  # cut, as ps cuts ...
    ids = {line.split()[0] for line in narrow[1:]}
    assert ids == {str(r["short_id"]) for r in sessions_json(recorded)}  # ... never the id
    wide = table(250)
    assert max(len(line) for line in wide) < 250  # room to spare: nothing cut to fit
    timed = [line for line in wide[1:] if re.search(r" \d{4}-\d\d-\d\d \d\d:", line)]
    assert timed, wide  # (a session whose first chunk is missing has no start time: "-")
    assert all(re.search(r"\d\d:\d\d:\d\d JST  ", line) for line in timed)  # Asia/Tokyo


def _without(environ: Mapping[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k not in names}
