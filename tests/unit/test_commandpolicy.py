"""Command policy: how a line is split, which rule decides, and rule files that are garbage."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshtrail.commandpolicy import Policy, load_policy, parse_policy
from sshtrail.policyfile import PolicyError
from sshtrail.shellwords import commands

RULES = b"""
[[rule]]
name = "no-history-wipe"
action = "reject"
match = ["history -c", 're:\\brm\\b.*_history\\b']
targets = ["prod-*"]
message = "wiping shell history is not allowed here"

[[rule]]
name = "no-rm"
action = "reject"
match = ["rm"]
operators = ["contractor-*"]

[[rule]]
name = "careful"
action = "warn"
match = ["rm -rf", "SHUTDOWN"]
ignore_case = true
message = "be sure"

[[rule]]
name = "let-ls"
action = "accept"
match = ["ls"]
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(RULES, "rules.toml")


@pytest.mark.parametrize(
    ("line", "split"),
    [
        ("history -c", [["history", "-c"]]),
        ("a; b && c || d | e & f", [["a"], ["b"], ["c"], ["d"], ["e"], ["f"]]),
        ('echo "rm -rf /"', [["echo", "rm -rf /"]]),
        ("echo 'a b'c", [["echo", "a bc"]]),
        ('bash -c "rm -rf /tmp/x"', [["bash", "-c", "rm -rf /tmp/x"], ["rm", "-rf", "/tmp/x"]]),
        ("sh -ec 'id; whoami'", [["sh", "-ec", "id; whoami"], ["id"], ["whoami"]]),
        ("eval rm x", [["eval", "rm", "x"], ["rm", "x"]]),
        ("echo $(rm x) `id`", [["rm", "x"], ["id"], ["echo", "$(rm x)", "`id`"]]),
        ('echo "$(rm x)"', [["rm", "x"], ["echo", "$(rm x)"]]),
        ("tou\\\nch /tmp/x", [["touch", "/tmp/x"]]),
        ("(cd /; rm x)", [["cd", "/"], ["rm", "x"]]),
        ("ls # rm -rf /", [["ls"]]),
        ("r\\m x", [["rm", "x"]]),
        ('echo "unclosed', [["echo", "unclosed"]]),
        ("rm</dev/null x", [["rm", "/dev/null", "x"]]),  # a redirection ends a word
        ("ls 2>&1 | wc", [["ls", "2", "1"], ["wc"]]),
        ("$'rm' x", [["rm", "x"]]),
        ("$'\\x72m' x", [["rm", "x"]]),  # ANSI-C escapes decoded
        ('$"rm" x', [["rm", "x"]]),
        ("{rm,x}", [["rm", "x"]]),  # brace expansion
        ("env sh -c 'rm x'", [["env", "sh", "-c", "rm x"], ["rm", "x"]]),
        ("command eval 'rm x'", [["command", "eval", "rm x"], ["rm", "x"]]),
        ("sh -c -- 'rm x'", [["sh", "-c", "--", "rm x"], ["rm", "x"]]),
        ('echo $(echo ")"); rm x', [["echo", ")"], ["echo", '$(echo ")")'], ["rm", "x"]]),
        ("echo $'a\\''; rm x", [["echo", "a'"], ["rm", "x"]]),
        ("", []),
    ],
)
def test_a_line_is_split_into_the_commands_the_shell_runs(
    line: str, split: list[list[str]]
) -> None:
    assert commands(line) == split


@given(st.text(max_size=200))
def test_any_line_splits_without_error(line: str) -> None:
    for words in commands(line):
        assert words


def test_nesting_is_followed_only_so_deep() -> None:
    line = "$(" * 5000 + "rm x" + ")" * 5000
    commands(line)  # no RecursionError: depth is bounded


@pytest.mark.parametrize(
    ("who", "line", "action", "rule"),
    [
        (("alice", "prod-db"), "history -c", "reject", "no-history-wipe"),
        (("alice", "prod-db"), "ls; history -c", "reject", "no-history-wipe"),
        (("alice", "prod-db"), "true && $(history -c)", "reject", "no-history-wipe"),
        (("alice", "prod-db"), "rm ~/.bash_history", "reject", "no-history-wipe"),
        (("alice", "dev"), "history -c", "accept", None),  # prod-* only
        (("alice", "prod-db"), "history", "accept", None),  # both words, consecutive
        (("alice", "prod-db"), "myhistory -c", "accept", None),  # whole words
        (("alice", "prod-db"), 'echo "history -c"', "accept", None),  # one quoted word
        (("contractor-1", "dev"), "sudo rm x", "reject", "no-rm"),
        (("contractor-1", "dev"), "echo rm", "reject", "no-rm"),  # a word of the command
        (("contractor-1", "dev"), "echo 'rm'ed", "accept", None),
        (("contractor-1", "dev"), "bash -c 'rm x'", "reject", "no-rm"),
        (("contractor-1", "dev"), "/bin/rm x", "reject", "no-rm"),  # a path to it
        (("contractor-1", "dev"), "cd /tmp/rm/", "accept", None),  # a folder is not
        (("contractor-1", "dev"), "nohup sh -c 'rm x'", "reject", "no-rm"),
        (("alice", "dev"), "rm -rf /tmp/x", "warn", "careful"),
        (("alice", "dev"), "RM -RF /tmp/x", "warn", "careful"),  # ignore_case
        (("alice", "dev"), "shutdown -h now", "warn", "careful"),
        (("alice", "dev"), "ls -l", "accept", "let-ls"),
        (("alice", "dev"), "uptime", "accept", None),
    ],
)
def test_the_first_rule_that_matches_decides(
    policy: Policy, who: tuple[str, str], line: str, action: str, rule: str | None
) -> None:
    decision = policy.decide(*who, line)
    assert decision.action == action
    assert (decision.rule.name if decision.rule else None) == rule


def test_a_decision_says_what_the_operator_is_told(policy: Policy) -> None:
    rejected = policy.decide("alice", "prod-db", "history -c")
    assert rejected.message == "wiping shell history is not allowed here"
    assert rejected.describe() == "reject by rule no-history-wipe (matched: history -c)"
    unnamed = policy.decide("contractor-1", "dev", "rm x")
    assert unnamed.message == "this command is not allowed here (rule no-rm)"
    assert policy.decide("alice", "dev", "id").describe() == "accept (no rule matches)"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (b"[[rule]\n", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"rules = 1\n", "unknown top-level key 'rules'"),
        (b"rule = 1\n", "'rule' must be tables written [[rule]]"),
        (b'[[rule]]\naction = "reject"\nmatch = ["x"]\n', "rule 1: 'name' must be"),
        (b'[[rule]]\nname = "a b"\naction = "reject"\nmatch = ["x"]\n', "'name' must be"),
        (b'[[rule]]\nname = "r"\naction = "block"\nmatch = ["x"]\n', "'action' must be one of"),
        (b'[[rule]]\nname = "r"\naction = "Review"\nmatch = ["x"]\n', "'action' must be one of"),
        (b'[[rule]]\nname = "r"\naction = "reject"\n', "rule 1 (r): 'match' must be a list"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = []\n', "'match' must be a list"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = "rm"\n', "'match' must be a list"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = [1]\n', "'match' must be a list"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = ["re:("]\n', "not a regular expr"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = ["   "]\n', "has no words"),
        (b'[[rule]]\nname = "r"\naction = "reject"\nmatch = ["x"]\nwho = 1\n', "unknown key 'who'"),
        (b'[[rule]]\nname = "r"\naction = "warn"\nmatch = ["x"]\nignore_case = 1\n', "true or"),
        (
            b'[[rule]]\nname = "r"\naction = "warn"\nmatch = ["x"]\nmessage = "\\u001b[2J"\n',
            "printable",
        ),
        (b'[[rule]]\nname = "r"\naction = "warn"\nmatch = ["x"]\ntargets = []\n', "'targets' must"),
        (
            b'[[rule]]\nname = "r"\naction = "warn"\nmatch = ["x"]\n' * 2,
            "rule 2: the name 'r' is used twice",
        ),
    ],
)
def test_a_rule_file_that_cannot_be_used_says_where_and_why(text: bytes, said: str) -> None:
    with pytest.raises(PolicyError, match=r"rules\.toml") as raised:
        parse_policy(text, "rules.toml")
    assert said in str(raised.value)


def test_a_file_too_large_or_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "none.toml")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)
    empty = tmp_path / "empty.toml"
    empty.write_text("# no rules yet\n")
    assert load_policy(empty).rules == ()
