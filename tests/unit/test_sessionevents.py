"""A session's events other than commands, as rules of ``product: sshtrail`` see them
(sshtrail/sessionevents.py, sshtrail/transferwatch.py), and the loader keeping each rule
to its own log source (sshtrail/sigmarules)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from consumer.alertsession import alert_id
from sshtrail import events as ev
from sshtrail.sessionevents import SessionEvents, SourcedEvent
from sshtrail.sigmarules import CATEGORIES, load_rule_file
from tests.support import sftpwire as w

KEY = bytes(32)
START = ev.Start(0, "alice", "[2001:db8::7]:50022", "prod-db", "10.0.0.5", 22, "root",
                 "gw-1", "xterm", 80, 24, 1_700_000_000 * 10**9)  # fmt: skip


def read(*chunks: list[ev.Event]) -> list[SourcedEvent]:
    session = SessionEvents()
    return [found for events in chunks for found in session.read(events)]


def test_start_and_end_are_session_events_with_who_and_where() -> None:
    start, end = read([START], [ev.End(9, "closed", 10, 20, 2, KEY)])
    assert (start.category, end.category) == ("session", "session")
    assert start.fields == {
        "EventType": "start", "Operator": "alice", "User": "root", "Target": "prod-db",
        "TargetHost": "10.0.0.5", "TargetPort": "22", "SourceIp": "2001:db8::7",
        "SourcePort": "50022", "Gateway": "gw-1", "Terminal": "xterm",
    }  # fmt: skip
    assert end.fields["EventType"] == "end"
    assert (end.fields["EndReason"], end.fields["BytesIn"], end.fields["BytesOut"]) == (
        "closed", "10", "20",
    )  # fmt: skip
    assert end.fields["Operator"] == "alice"
    assert end.summary == "session end: closed"


def test_requests_and_a_forwarded_connection() -> None:
    [_, shell, forward] = read(
        [START, ev.Exec(1, "shell", b""), ev.Exec(2, "direct-tcpip", b"[fd00::1]:3389")]
    )
    assert shell.fields["Request"] == "shell"
    assert "Command" not in shell.fields  # absent, never empty
    assert (forward.category, forward.fields["DestinationHost"]) == ("request", "fd00::1")
    assert forward.fields["DestinationPort"] == "3389"
    assert forward.summary == "direct-tcpip [fd00::1]:3389"


def test_environment_values_and_withheld_ones() -> None:
    [_, lang, token] = read(
        [START, ev.Env(1, b"LANG", b"C.UTF-8", True), ev.Env(1, b"AWS_SECRET", None, False)]
    )
    assert lang.fields.items() >= {"Name": "LANG", "Value": "C.UTF-8", "Withheld": "false",
                                "Accepted": "true"}.items()  # fmt: skip
    assert token.fields["Withheld"] == "true"
    assert token.fields["Accepted"] == "false"
    assert "Value" not in token.fields
    assert token.summary == "AWS_SECRET (withheld)"
    assert (lang.t, lang.index) != (token.t, token.index)  # one instant, two places


@pytest.mark.parametrize(
    ("notice", "expected"),
    [
        ("reject by rule no-rm: rm -rf /", {"Action": "reject", "Rule": "no-rm",
                                           "CommandLine": "rm -rf /"}),
        ("warn by rule careful: sudo -i", {"Action": "warn", "Rule": "careful",
                                          "CommandLine": "sudo -i"}),
        ("review by rule four-eyes approved by bob after 3.0 s: change 42: systemctl stop db",
         {"Action": "review", "Rule": "four-eyes", "Outcome": "approved", "Auditor": "bob",
          "Reason": "change 42", "CommandLine": "systemctl stop db"}),
        ('review by rule four-eyes approved by bob after 3.0 s: "change 42: db \\"a\\": ok": '
         "systemctl stop db",
         {"Action": "review", "Rule": "four-eyes", "Outcome": "approved", "Auditor": "bob",
          "Reason": 'change 42: db "a": ok', "CommandLine": "systemctl stop db"}),
        ("reject by rule four-eyes after review timed out after 60.0 s: reboot",
         {"Action": "reject", "Rule": "four-eyes", "Outcome": "timed out",
          "CommandLine": "reboot"}),
        ("rejected: the command policy cannot be read: ls", {"Action": "reject",
                                                            "CommandLine": "ls"}),
        ("something new", {}),
    ],
)  # fmt: skip
def test_policy_decisions(notice: str, expected: dict[str, str]) -> None:
    [_, found] = read([START, ev.Notice(5, "policy", notice)])
    assert found.category == "policy"
    assert found.fields["Message"] == notice
    decided = {k: v for k, v in found.fields.items() if k in
               {"Action", "Rule", "Outcome", "Auditor", "Reason", "CommandLine"}}  # fmt: skip
    assert decided == expected


def test_refused_logins_and_logins_after_failures() -> None:
    [_, refused] = read(
        [START, ev.End(1, "refused: authentication failed (3 failed attempts: password 3)",
                       0, 0, 1, KEY)]
    )  # fmt: skip
    assert refused.category == "login"
    assert refused.fields["Outcome"] == "refused"
    assert refused.fields["FailedAttempts"] == "3"
    assert refused.fields["SourceIp"] == "2001:db8::7"
    auth = ev.Notice(1, "auth", "logged in after 1 failed attempt: password 1")
    [_, _, after] = read([START, ev.Exec(1, "shell", b""), auth])
    assert (after.category, after.fields["Outcome"]) == ("login", "succeeded")
    assert after.fields["FailedAttempts"] == "1"
    # A command refused by the policy after a request is the policy's, not a login.
    [_, _, ended] = read(
        [
            START,
            ev.Exec(1, "exec", b"rm -rf /"),
            ev.End(2, "refused: command rejected", 0, 0, 1, KEY),
        ]
    )
    assert (ended.category, ended.fields["EndReason"]) == ("session", "refused: command rejected")


def test_an_sftp_upload_is_a_file_transfer_read_as_its_chunks_arrive() -> None:
    content = b"#!/bin/sh\nid\n"
    requests, replies = w.upload("/tmp/x.sh", content)
    session = SessionEvents()
    assert [e.category for e in session.read([START, ev.Exec(0, "subsystem", b"sftp")])] == [
        "session", "request",
    ]  # fmt: skip
    assert session.read([ev.Input(1, w.INIT), ev.Output(2, w.VERSION)]) == []
    found: list[SourcedEvent] = []
    for t, (request, reply) in enumerate(zip(requests, replies, strict=True), start=3):
        found += session.read([ev.Input(2 * t, request), ev.Output(2 * t + 1, reply)])
    [upload] = found  # before the session's end
    assert upload.category == "file_transfer"
    assert upload.fields.items() >= {
        "Protocol": "sftp", "Operation": "upload", "Path": "/tmp/x.sh", "Status": "ok",
        "Bytes": str(len(content)), "Sha256": hashlib.sha256(content).hexdigest(),
        "Operator": "alice",
    }.items()  # fmt: skip
    assert upload.summary == "sftp upload /tmp/x.sh"


def rule(tmp_path: Path, product: str, category: str, detection: str) -> Path:
    path = tmp_path / f"{category}.yml"
    path.write_text(
        f"title: T {category}\nid: 0b6c4f4e-1111-4c1a-9f00-{abs(hash(category)) % 10**12:012d}\n"
        f"author: tests\nlogsource:\n    product: {product}\n    category: {category}\n"
        f"detection:\n{detection}\n    condition: selection\nlevel: high\n"
    )
    return path


def test_each_category_of_ours_loads_and_keeps_to_its_events(tmp_path: Path) -> None:
    for category in CATEGORIES:
        loaded, status = load_rule_file(
            rule(tmp_path, "sshtrail", category, "    selection:\n        Operator: alice")
        )
        assert status.status == "active", status.reason
        assert loaded is not None
        assert loaded.category == category
        assert status.logsource == f"sshtrail/{category}"


def test_a_command_alert_keeps_its_id_and_two_events_of_one_instant_have_two() -> None:
    session = uuid.UUID(int=7)
    before = hashlib.sha256(f"{session}|3|rule-1|42".encode()).hexdigest()[:32]
    assert alert_id(session, 3, "rule-1", 42) == before  # ids stored before stay valid
    assert len({alert_id(session, 3, "rule-1", 42, f"environment|{n}") for n in (0, 1)}) == 2


@pytest.mark.parametrize(
    ("product", "category", "detection", "reason"),
    [
        ("sshtrail", "dns", "    selection:\n        Name: x",
         "invalid: logsource product sshtrail with category dns: its categories are session, "
         "request, environment, file_transfer, policy, login"),
        ("sshtrail", "environment", "    selection:\n        CommandLine: x",
         "needs field CommandLine"),
        ("sshtrail", "environment", "    selection:\n        - secret", "keyword"),
        ("windows", "process_creation", "    selection:\n        Image: x",
         "invalid: logsource category process_creation, product windows: not Linux process "
         "creation"),
    ],
)  # fmt: skip
def test_rules_ours_cannot_use_say_why(
    tmp_path: Path, product: str, category: str, detection: str, reason: str
) -> None:
    loaded, status = load_rule_file(rule(tmp_path, product, category, detection))
    assert loaded is None
    assert reason in status.reason
