"""Command policy at the real gateway: exec requests and subsystems checked before they
run, on a real sshd, through the real OpenSSH client; the rules reloaded when their file
changes; a file that cannot be read fails closed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from sshtrail import migrate
from sshtrail.events import End, Notice
from tests.support.cli import sshtrail
from tests.support.consumers import start_member, write_config
from tests.support.gateway import GatewayProcess, published, toml_value
from tests.support.kafka import KafkaCluster
from tests.support.policyrules import policy_rule
from tests.support.sshd import SshdTarget
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RULES = "".join(
    (
        policy_rule(
            "no-rm",
            "reject",
            ["rm"],
            "removing files is not allowed through this gateway",
            targets=["t1"],
        ),
        policy_rule("no-sftp", "reject", ["sftp"], "no file transfers here", operators=["alice"]),
        policy_rule("watched", "warn", ["touch"], "touching files is watched"),
    )
)


def policy_gateway(
    tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget, rules: str
) -> GatewayProcess:
    """A started gateway whose command policy is ``rules``, read from
    ``tmp_path/policy.toml``: a test rewrites that file to change them."""
    path = tmp_path / "policy.toml"
    path.write_text(rules)
    process = GatewayProcess(
        tmp_path / "gw",
        broker.bootstrap_servers,
        sshd,
        config_tail=f"[policy]\nfile = {toml_value(str(path))}\n",
    )
    process.start()
    return process


@pytest.fixture
def gateway(tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = policy_gateway(tmp_path, broker, sshd, RULES)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.stop()


def ssh(gateway: GatewayProcess, command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        gateway.ssh("alice:t1", command), capture_output=True, timeout=30, check=False
    )


def end_reasons(gateway: GatewayProcess, sessions: int) -> list[str]:
    found = published(gateway.servers, gateway.topic, complete=sessions)
    return [
        event.reason
        for entries in found.values()
        for _, _, chunk in entries
        for event in chunk.events
        if isinstance(event, End)
    ]


def test_a_rejected_command_does_not_run_and_a_warned_one_does(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("still here")
    rejected = ssh(gateway, f"rm {victim}")
    assert rejected.returncode == 126, rejected.stderr
    assert b"sshtrail: removing files is not allowed through this gateway" in rejected.stderr
    assert victim.exists()  # checked on the target: the command never ran
    # A rule on a word of one of the commands the line runs, however it is joined.
    for line in (f"true; rm {victim}", f"echo $(rm {victim})", f"sh -c 'rm {victim}'"):
        assert ssh(gateway, line).returncode == 126, line
        assert victim.exists(), line
    # The word in a quoted argument is not a command: it runs.
    harmless = ssh(gateway, 'echo "rm is not run here"')
    assert harmless.returncode == 0
    assert harmless.stdout == b"rm is not run here\n"
    made = tmp_path / "made"
    warned = ssh(gateway, f"touch {made}")
    assert warned.returncode == 0
    assert b"sshtrail: warning (rule watched): touching files is watched" in warned.stderr
    assert made.exists()
    reasons = end_reasons(gateway, 6)
    assert (
        reasons.count(
            "refused: command rejected by rule no-rm: removing files is not allowed through "
            "this gateway"
        )
        == 4
    )
    assert reasons.count("exit status 0") == 2


def test_a_subsystem_is_checked_by_its_name(gateway: GatewayProcess, tmp_path: Path) -> None:
    batch = tmp_path / "batch"
    batch.write_text("ls\n")
    done = subprocess.run(
        gateway.file_client("sftp", "alice:t1", "-b", str(batch), "127.0.0.1"),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "refused: command rejected by rule no-sftp: no file transfers here" in end_reasons(
        gateway, 1
    )


def test_rules_are_read_again_when_their_file_changes_and_a_bad_one_keeps_the_last(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    rules = tmp_path / "policy.toml"
    victim = tmp_path / "victim"
    victim.write_text("x")
    rules.write_text("[[rule]\nthis is not TOML")
    time.sleep(1.1)  # the gateway looks at the file at most once a second
    assert ssh(gateway, f"rm {victim}").returncode == 126  # the last good rules stay
    wait_for(
        lambda: any("not valid TOML" in line for line in gateway.output),
        what="the gateway to say why the file is not used",
    )
    rules.write_text(RULES.replace('targets = ["t1"]', 'targets = ["prod-*"]'))
    time.sleep(1.1)
    assert ssh(gateway, f"rm {victim}").returncode == 0
    assert not victim.exists()


def test_a_gateway_whose_rules_cannot_be_read_refuses_every_session(
    tmp_path: Path, broker: KafkaCluster, sshd: SshdTarget
) -> None:
    unreadable = '[[rule]]\nname = "r"\naction = "reject"\nmatch = ["re:("]\n'
    process = policy_gateway(tmp_path, broker, sshd, unreadable)
    try:
        refused = ssh(process, "uptime")
        assert refused.returncode != 0
        assert b"command policy cannot be read" in refused.stderr
        (tmp_path / "policy.toml").write_text(RULES)  # mended: sessions are let in again
        time.sleep(1.1)
        assert ssh(process, "uptime").returncode == 0
    finally:
        process.stop()


def shell(gateway: GatewayProcess, program: str = "bash --norc --noprofile") -> pexpect.spawn:
    """A shell on the target, through the gateway with a terminal, at a known prompt."""
    child = pexpect.spawn(
        *_argv(gateway.ssh("alice:t1", tty=True)),
        timeout=20,
        dimensions=(24, 200),
        env={**os.environ, "TERM": "xterm"},
    )
    child.sendline(f"exec {program}")
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    child.expect("READY> ")  # the echo of the line, then the prompt itself
    return child


def _argv(argv: list[str]) -> tuple[str, list[str]]:
    return argv[0], argv[1:]


def typed(child: pexpect.spawn, keys: str) -> None:
    """Keys one at a time, as a person types them (each echoed before the next)."""
    for key in keys:
        child.send(key)
        time.sleep(0.01)


def test_a_terminal_shell_has_its_commands_decided_however_they_are_typed(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    victim, made = tmp_path / "victim", tmp_path / "made"
    victim.write_text("still here")
    child = shell(gateway)
    rejected = "removing files is not allowed through this gateway"
    for keys in (
        f"rm {victim}\r",  # typed
        f"rx\x7fm {victim}\r",  # a typo mended with backspace
        f"m {victim}\x01r\r",  # Ctrl-A, then the first letter
        f"r\\\rm {victim}\r",  # a backslash-continued line
    ):
        typed(child, keys)
        child.expect(rejected)
        child.expect("READY> ")
        assert victim.exists(), repr(keys)
    # Pasted at once: each line is decided as the shell shows it; what follows a
    # rejected line is dropped.
    child.send(f"true\rrm {victim}\rtouch {made}\r")
    child.expect(rejected)
    child.expect("READY> ")
    child.send("\x1b[200~" + f"rm {victim}\r" + "\x1b[201~")  # a bracketed paste
    child.expect(rejected)
    child.expect("READY> ")
    assert victim.exists()
    assert not made.exists()
    typed(child, 'echo "rm is fine"\r')  # the word in a quoted argument
    child.expect("rm is fine\r\n")
    child.expect("READY> ")
    typed(child, f"touch {made}\r")
    child.expect("sshtrail: warning \\(rule watched\\): touching files is watched")
    child.expect("READY> ")
    wait_for(made.exists, what="the warned command to run")
    typed(child, f"history -s 'rm {victim}'\r")  # in the history, never run
    child.expect("READY> ")
    typed(child, "\x12rm vic\r")  # found by Ctrl-R, run by Enter
    child.expect(rejected)
    child.expect("READY> ")
    assert victim.exists()
    typed(child, "\x1b[A\x1b[A\x1b[A\r")  # history recall: the echo line three back
    child.expect("rm is fine\r\n")
    child.expect("READY> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    found = published(gateway.servers, gateway.topic, complete=1)
    notices = [
        event.text
        for entries in found.values()
        for _, _, chunk in entries
        for event in chunk.events
        if isinstance(event, Notice) and event.code == "policy"
    ]
    assert len([n for n in notices if n.startswith("reject by rule no-rm: ")]) == 7, notices
    assert f"warn by rule watched: touch {made}" in notices


def test_dash_without_line_editing_is_read_as_its_terminal_shows_it(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """dash has no line editor: the terminal driver echoes and erases (a backspace is
    "\\b \\b" on screen); the line is read the same way."""
    victim = tmp_path / "victim"
    victim.write_text("still here")
    child = shell(gateway, "dash")
    for keys in (f"rm {victim}\r", f"rx\x7fm {victim}\r"):
        typed(child, keys)
        child.expect("removing files is not allowed through this gateway")
        child.expect("READY> ")
        assert victim.exists(), repr(keys)
    typed(child, 'echo "rm is fine"\r')
    child.expect("rm is fine\r\n")
    child.expect("READY> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_sessions_are_marked_by_what_the_policy_did_and_listed_by_it(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """The store group reads each session's decisions: ``sessions --policy`` and
    ``show`` tell the sessions the policy rejected or warned in."""
    database = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(database)
    config = write_config(tmp_path / "store.toml", gateway.servers, gateway.topic, database)
    store = start_member(config, "store")
    try:
        assert ssh(gateway, f"rm {tmp_path / 'nothing'}").returncode == 126
        assert ssh(gateway, f"touch {tmp_path / 'made'}").returncode == 0
        assert ssh(gateway, "uptime").returncode == 0

        def listed(*options: str) -> list[dict[str, object]]:
            found = sshtrail(config, "sessions", "--json", *options)
            return json.loads(found.stdout)  # type: ignore[no-any-return]

        wait_for(lambda: len(listed()) == 3, what="the three sessions stored")
        rejected = listed("--policy", "rejected")
        assert [row["policy"] for row in rejected] == ["rejected"]
        assert sorted(str(row["policy"]) for row in listed("--policy", "warned")) == [
            "rejected",
            "warned",
        ]
        shown = sshtrail(config, "show", str(rejected[0]["session"])).stdout.decode()
        assert "policy" in shown
        assert "rejected" in shown
    finally:
        store.stop()


def test_a_command_given_a_terminal_is_gated_like_a_shell(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """``ssh -t host bash`` is an exec request with a terminal: its lines are decided as
    a login shell's are; Ctrl-O (run the line, fetch the next) is an Enter too."""
    victim = tmp_path / "victim"
    victim.write_text("still here")
    child = pexpect.spawn(
        *_argv(gateway.ssh("alice:t1", "bash --norc --noprofile -i", tty=True)),
        timeout=20,
        dimensions=(24, 200),
        env={**os.environ, "TERM": "xterm"},
    )
    child.sendline("PS1='READY> '")
    child.expect("READY> ")
    child.expect("READY> ")
    for keys in (f"rm {victim}\r", f"rm {victim}\x0f"):
        typed(child, keys)
        child.expect("removing files is not allowed through this gateway")
        child.expect("READY> ")
        assert victim.exists(), repr(keys)
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_zsh_has_its_commands_decided_however_they_are_typed(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    """zsh's line editor (ZLE) redraws the line its own way -- a partial-line marker
    before each prompt, a right-side erase, its own bracketed paste -- and the line it
    shows is read the same way as bash's."""
    victim, made = tmp_path / "victim", tmp_path / "made"
    victim.write_text("still here")
    child = shell(gateway, "zsh -f")
    rejected = "removing files is not allowed through this gateway"
    for keys in (
        f"rm {victim}\r",  # typed
        f"rx\x7fm {victim}\r",  # a typo mended with backspace
        f"m {victim}\x01r\r",  # Ctrl-A, then the first letter
        f"r\\\rm {victim}\r",  # a backslash-continued line
        f"print -s 'rm {victim}'\r\x1b[A\r",  # put in the history, recalled, run
    ):
        typed(child, keys)
        child.expect(rejected)
        child.expect("READY> ")
        assert victim.exists(), repr(keys)
    child.send("\x1b[200~" + f"rm {victim}" + "\x1b[201~")  # a bracketed paste, then Enter
    time.sleep(0.3)
    child.send("\r")
    child.expect(rejected)
    child.expect("READY> ")
    assert victim.exists()
    typed(child, 'echo "rm is fine"\r')
    child.expect("rm is fine\r\n")
    child.expect("READY> ")
    typed(child, f"touch {made}\r")
    child.expect("sshtrail: warning \\(rule watched\\): touching files is watched")
    wait_for(made.exists, what="the warned command to run")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def test_a_shell_command_run_from_vim_is_decided(gateway: GatewayProcess, tmp_path: Path) -> None:
    """vim's ``:!rm FILE`` is decided as the line a prompt would run: rejected, vim's
    command line is cancelled and vim goes on; ``:!`` with an allowed command runs."""
    victim, made = tmp_path / "victim", tmp_path / "made"
    victim.write_text("still here")
    child = shell(gateway)
    child.sendline(f"vim -u NONE -n {tmp_path / 'notes.txt'}")
    child.expect("notes.txt")
    typed(child, f":!rm {victim}\r")
    child.expect("removing files is not allowed through this gateway")
    typed(child, f":!touch {made}\r")
    child.expect("Press ENTER")
    child.send("\r")
    typed(child, ":q!\r")
    child.expect("READY> ")
    assert victim.exists()
    assert made.exists()
    child.sendline("exit")
    child.expect(pexpect.EOF)
