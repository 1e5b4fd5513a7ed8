"""Issue 41's 28 evasion cases, re-created from its text and scored (docs/search.md).

Typed through the real gateway to the real sshd in bash (pexpect driving ``ssh -tt``,
echo on, no escrow key), or sent to it without a terminal (``ssh -T``, real ``sftp``
and ``scp``); read by a real store member and a real index member on SQLite; scored
with the real CLI: each case's marker found by ``search``, and its command listed by
``show`` (or its file by ``transfers``, or its session flagged) as the issue asks.
Many cases share a session, so the whole run takes well under two minutes.
``pytest -s`` prints the table. A case marked missed must stay missed: the test
fails when it starts to hold (then record the new score) or when a held one breaks.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from tests.integration.test_evasion import bash
from tests.integration.test_transfer_recognition import SFTP_SERVER, WRAPPER
from tests.support.cli import sshtrail
from tests.support.consumers import group_lag, start_member, wait_for, write_config
from tests.support.evasionscore import (
    Case,
    Check,
    Seen,
    absent,
    both,
    containing,
    either,
    flagged,
    flagged_only,
    listed,
    listed_as,
    masked_exactly,
    moved,
    no_piece,
    not_masked,
    only,
    score,
    table,
)
from tests.support.evasiontyping import (
    PROMPT,
    editors_session,
    exits,
    keys,
    mark,
    sent,
    typed_session,
)
from tests.support.gateway import GatewayProcess
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration

#: Why the cases that do not hold yet are missed (case number: reason).
MISSED: dict[int, str] = {}


def test_the_28_cases_of_issue_41_are_found_and_listed(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> None:
    if not SFTP_SERVER.exists():
        pytest.skip(f"no {SFTP_SERVER} on this machine")
    run = uuid.uuid4().hex[:6]

    def m(number: int) -> str:
        return mark(run, number)

    tdir, local = tmp_path / "t", tmp_path / "local"
    tdir.mkdir()
    local.mkdir()
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd, dead_letters=True)
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    config = write_config(
        tmp_path / "sshtrail.toml",
        broker.bootstrap_servers,
        gateway.topic,
        store_url,
        search_url=f"sqlite:///{tmp_path / 'search.db'}",
    )
    sshtrail(config, "db", "upgrade", timeout=60)
    members = [start_member(config, "store"), start_member(config, "index")]
    gateway.start()
    order: list[str] = []  # the sessions' names, in the order they started

    def terminal(name: str, drive: Callable[[pexpect.spawn], None], how: str = "exit\r") -> None:
        order.append(name)
        child = bash(gateway)
        drive(child)
        exits(child, how)

    def blind_read(child: pexpect.spawn) -> None:
        sent(child, 'read -s c; eval "$c"')
        time.sleep(0.3)
        child.send(f"echo {m(19)}-$((40+2))\r")
        child.expect(f"{m(19)}-42")
        child.expect(PROMPT)

    def echo_off(child: pexpect.spawn) -> None:
        sent(child, "stty -ec''ho", PROMPT)
        for number in (40, 41):
            child.send(f"echo {m(20)}-$(({number}+2))\r")
            child.expect(f"{m(20)}-{number + 2}")
            child.expect(PROMPT)

    def hidden(child: pexpect.spawn) -> None:
        sent(child, "tput smcup", PROMPT)
        child.sendline(r"""PS1='\[\e[H\e[99M\]$ '; trap 'printf "\e[H\e[99M"' DEBUG""")
        # The prompt itself, its escapes real: the echo of the line above holds "$ " too,
        # and a line typed before its predecessor's prompt is not one the prompt erased.
        prompt = "\x1b\\[99M\\$ "
        child.expect(prompt)
        for line in (f"touch {tdir}/hidden-{m(18)}", "echo 1", f"echo {m(18)}-$((40+2))"):
            child.sendline(line)
            child.expect(prompt)

    def password(child: pexpect.spawn) -> None:
        sent(child, f'read -s -p "pw-$((1+1))-{m(16)}: " pw; echo', f"pw-2-{m(16)}: ")
        keys(child, "hunter2\r")
        child.expect(PROMPT)
        # A prompt as sudo's asks: the terminal's echo turned off on /dev/tty (getpass).
        asks = "python3 -c 'import getpass; getpass.getpass(\"[sudo] password for alice: \")'"
        sent(child, asks, asks, "[sudo] password for alice: ")  # its echo holds the prompt too
        keys(child, "tr0ub4dor\r", pause=0.06)  # at a person's pace
        child.expect(PROMPT)

    def prompts(child: pexpect.spawn) -> None:
        for number, ps1 in ((21, "PS1=''"), (22, r"PS1='total 0\n'")):
            child.sendline(ps1)
            time.sleep(0.3)
            for add in (1, 2):
                child.sendline(f"echo {m(number)}-$((40+{add}))")
                child.expect(f"{m(number)}-{40 + add}")
                time.sleep(0.3)

    sha = {}
    try:
        terminal("typed", lambda child: typed_session(child, m, tdir))
        terminal("editors", lambda child: editors_session(child, m, tdir))
        terminal("password", password)
        terminal("hidden", hidden)
        terminal("blind-read", blind_read)
        terminal("echo-off", echo_off, "\x04")  # no third blind line
        terminal("prompts", prompts)
        stdin_cases = (
            (23, "ssh -T", (), lambda s: s),
            (24, "bash -s", ("bash -s",), lambda s: s),
            (25, "gunzip", ("gunzip | bash",), gzip.compress),
            (26, "base64", ("base64 -d | bash",), base64.encodebytes),
        )
        for number, name, remote, encode in stdin_cases:
            script = f"echo {m(number)}-$((40+2))\ntouch {tdir}/stdin-{m(number)}\n".encode()
            order.append(name)
            finished = subprocess.run(
                gateway.ssh("alice:t1", *remote),
                input=encode(script),
                capture_output=True,
                timeout=60,
                check=False,
            )
            assert f"{m(number)}-42".encode() in finished.stdout, (name, finished.stderr)
        wrapper = tmp_path / "ssh-wrapping"
        wrapper.write_text(WRAPPER)
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        for number in (27, 28):
            data = os.urandom(200_000)
            (local / m(number)).write_bytes(data)
            sha[number] = hashlib.sha256(data).hexdigest()
        batch = tmp_path / "batch"
        batch.write_text(f"put {local}/{m(27)} {tdir}/{m(27)}\n")
        transfers = (
            (
                "sftp",
                gateway.file_client(
                    "sftp", "alice:t1", "-s", str(SFTP_SERVER), "-b", str(batch), "127.0.0.1"
                ),
            ),
            (
                "scp",
                [
                    *gateway.file_client("scp", "alice:t1", "-O", "-S", str(wrapper)),
                    str(local / m(28)),
                    f"127.0.0.1:{tdir}/{m(28)}",
                ],
            ),
        )
        for name, argv in transfers:
            order.append(name)
            env = {**os.environ, "SCP_WRAP": "env %s"}
            done = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
            assert done.returncode == 0, (name, done.stderr)

        state: list[object] = []

        def caught_up() -> bool:
            listing = json.loads(sshtrail(config, "sessions", "--json").stdout)
            lag = [
                group_lag(broker.bootstrap_servers, f"{gateway.topic}-{group}", gateway.topic)
                for group in ("store", "index")
            ]
            state[:] = [len(listing), len(order), [r["end_reason"] for r in listing], lag]
            return (
                len(listing) == len(order)
                and all(row["end_reason"] for row in listing)
                and not any(any(behind.values()) for behind in lag)
            )

        wait_for(caught_up, timeout=60, what=f"every session stored and indexed: {state}")
    finally:
        gateway.stop()
        for member in members:
            member.stop()
    listing = json.loads(sshtrail(config, "sessions", "--json").stdout)
    ids = dict(
        zip(
            order,
            [row["session"] for row in sorted(listing, key=lambda r: r["started_at"])],
            strict=True,
        )
    )
    seen = {name: shown(config, session) for name, session in ids.items()}
    hits = json.loads(sshtrail(config, "search", run, "--json", "--limit", "5000").stdout)
    scores = score(cases(m, tdir, sha), hits, seen)
    print("\n" + table(scores))
    assert len(scores) == 28
    unexpected = [
        (s.case.number, s.case.name, s.found, s.detail)
        for s in scores
        if s.held == bool(MISSED.get(s.case.number))
    ]
    assert not unexpected, unexpected


def shown(config: Path, session: str) -> Seen:
    one = json.loads(sshtrail(config, "show", session, "--json").stdout)
    moved_files = json.loads(
        sshtrail(config, "transfers", "--session", session, "--json").stdout or "[]"
    )
    return Seen(
        [(c["command"], c["certain"]) for c in one["commands"]],
        one["flags"],
        one["masked_input"],
        [(t["op"], t["path"], t["size"], t["sha256"]) for t in moved_files],
        one["masked_bytes"],
    )


def cases(m: Callable[[int], str], tdir: Path, sha: dict[int, str]) -> list[Case]:
    """The issue's 28, in its order: what held, what it missed, what it listed wrongly."""

    def run(number: int) -> str:
        return f"echo {m(number)}-$((40+2))"

    def uncertain_prompt(number: int) -> Check:
        return both(
            listed_as(f"echo {m(number)}-$((40+1))", False),
            flagged("uncertain-prompt"),
        )

    def stdin(number: int, flag: str) -> Check:
        return either(containing(m(number)), flagged(flag))

    made = [
        ("line editing (Ctrl-U, backspace, Ctrl-A insert)", "typed", listed(run(1))),
        ("tab completion", "typed", listed(f"ls {tdir}/tab-{m(2)}-file")),
        ("Ctrl-R reverse search", "typed", listed(run(3), 2)),
        ("here-document", "typed", containing(m(4))),
        ("bracketed paste", "typed", listed(run(5))),
        ("python3 -c", "typed", listed(f"python3 -c 'print(\"{m(6)}-\" + str(6*7))'")),
        (
            "several commands per line",
            "typed",
            listed(f"echo {m(7)}-a; touch {tdir}/multi-{m(7)} && echo {m(7)}-$((40+2))"),
        ),
        (
            "backslash-continued line is one command",
            "typed",
            both(listed(f"touch {tdir}/cont-{m(8)}"), no_piece()),
        ),
        (
            "!-2 listed as typed and as what ran",
            "typed",
            both(listed_as("!-2", True), listed_as(run(9), False)),
        ),
        (
            "fc -s rm=ls as typed and as what ran",
            "typed",
            both(listed_as("fc -s rm=ls", True), listed_as(f"ls -f {tdir}/fc-{m(10)}", False)),
        ),
        (
            "alias as typed and as what ran",
            "typed",
            both(
                listed_as(f"mkf {tdir}/alias-{m(11)}", True),
                listed_as(f"touch {tdir}/alias-{m(11)}", False),
            ),
        ),
        (
            "Ctrl-O (operate-and-get-next)",
            "typed",
            both(
                listed(f"echo first-$((1+1))-{m(12)}", 2),
                listed(f"echo second-$((1+1))-{m(12)}", 2),
            ),
        ),
        ("bind -x key running the line, no Enter", "typed", listed(f"touch {tdir}/bound-{m(13)}")),
        ("vim :!cmd", "typed", listed(f"touch {tdir}/from-vim-{m(14)}")),
        (
            "text typed into vim and nano is not masked",
            "editors",
            both(listed(f"vim -u NONE -n {tdir}/typed-{m(15)}.txt"), not_masked()),
        ),
        (
            "read -s and sudo-like passwords masked, not flagged",
            "password",
            both(
                containing(f"pw-$((1+1))-{m(16)}"),
                flagged_only("masked"),
                masked_exactly("hunter2", "tr0ub4dor"),
            ),
        ),
        (
            "vim exiting at once is one clean command",
            "editors",
            only(f"vim -u NONE -c 'normal itext' -c 'w! {tdir}/quit-{m(17)}' -c 'q'", m(17)),
        ),
        (
            "alternate screen + prompt deleting its line",
            "hidden",
            both(listed(f"touch {tdir}/hidden-{m(18)}"), flagged("prompt-erases")),
        ),
        (
            'read -s c; eval "$c"; its output no command',
            "blind-read",
            both(flagged("blind-eval", "suspicious"), absent(f"{m(19)}-42")),
        ),
        ("stty -ec''ho then two short lines", "echo-off", flagged("blind-eval", "suspicious")),
        ("empty PS1: uncertain and flagged", "prompts", uncertain_prompt(21)),
        ("output-looking PS1: uncertain and flagged", "prompts", uncertain_prompt(22)),
        ("ssh -T with a script on stdin", "ssh -T", stdin(23, "binary-stdin")),
        ("ssh host 'bash -s' < script", "bash -s", stdin(24, "binary-stdin")),
        ("ssh host 'gunzip | bash' < script.gz", "gunzip", stdin(25, "binary-stdin")),
        ("ssh host 'base64 -d | bash' < script.b64", "base64", stdin(26, "binary-stdin")),
        ("sftp -s /usr/lib/openssh/sftp-server upload", "sftp", moved(f"{tdir}/{m(27)}", sha[27])),
        ("ssh host 'env scp -t DIR' upload", "scp", moved(f"{tdir}/{m(28)}", sha[28])),
    ]
    needles = {15: f"hello from vim {m(15)}", 16: f"pw-2-{m(16)}"}
    return [
        Case(n, name, session, needles.get(n, m(n)), check, MISSED.get(n, ""))
        for n, (name, session, check) in enumerate(made, start=1)
    ]
