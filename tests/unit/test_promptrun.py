"""The ``uncertain-prompt`` rule: commands in a row on lines with no prompt at all,
flagged from three, not when keys typed ahead explain them (sshtrail/promptrun.py)."""

from __future__ import annotations

import pytest

from sshtrail.promptrun import MIN_RUN, PromptRun
from sshtrail.terminal import Terminal

PROMPT = b"deploy@web01:~$ "


def entered(term: Terminal, line: bytes, output: bytes, t: int) -> None:
    """``line`` typed key by key (echoed), Enter, and its output."""
    for key in line:
        term.input(bytes([key]), t)
        term.output(bytes([key]), t)
    term.input(b"\r", t + 1)
    term.output(b"\r\n" + output, t + 2)


def session(ps1: bytes, commands: int) -> Terminal:
    """A bash session whose prompt is set to ``ps1`` (as drawn), then ``commands`` more."""
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    entered(term, b"PS1=...", ps1, 1)
    for n in range(commands):
        entered(term, b"echo marker-%d" % n, b"marker-%d\r\n" % n + ps1, 10 * (n + 1))
    term.finish(10_000)
    return term


def run_of(promptless: int, then_sure: int = 0) -> PromptRun:
    run = PromptRun()
    for _ in range(promptless):
        run.command(certain=False, promptless=True)
    for _ in range(then_sure):
        run.command(certain=True, promptless=False)
    return run


def test_three_commands_in_a_row_without_a_prompt_flag_the_session() -> None:
    assert not run_of(MIN_RUN - 1).flagged
    assert run_of(MIN_RUN).flagged
    assert run_of(MIN_RUN, then_sure=5).flagged  # a normal prompt again: still flagged


def test_a_sure_command_between_breaks_the_run() -> None:
    run = PromptRun()
    for _ in range(5):
        run.command(certain=False, promptless=True)
        run.command(certain=False, promptless=True)
        run.command(certain=True, promptless=False)
    assert not run.flagged


def test_a_prompt_the_shell_draws_again_explains_the_run() -> None:
    run = PromptRun()
    for _ in range(4):
        run.command(certain=False, promptless=True)
    run.prompt_drawn()
    run.command(certain=True, promptless=False)
    assert not run.flagged


def test_uncertain_commands_with_a_prompt_on_their_line_do_not_count() -> None:
    """An alias's expansion, a history expansion, a prompt redrawn: doubted, but the
    prompt was there."""
    run = PromptRun()
    for _ in range(10):
        run.command(certain=False, promptless=False)
    assert not run.flagged


def test_taken_over_flagged_stays_flagged() -> None:
    assert PromptRun(flagged=True).flagged


@pytest.mark.parametrize("ps1", [b"", b"total 0\r\n"], ids=["empty", "output-looking"])
def test_an_empty_or_output_looking_ps1_flags_the_session(ps1: bytes) -> None:
    term = session(ps1, 3)
    commands = [(f.text, f.certain) for f in term.found if f.kind == "command"]
    assert commands[1:] == [(f"echo marker-{n}", False) for n in range(3)]
    assert term.prompt_run.flagged


def test_two_commands_without_a_prompt_do_not() -> None:
    assert not session(b"", 2).prompt_run.flagged


def test_a_normal_prompt_does_not() -> None:
    term = session(PROMPT, 20)
    assert all(f.certain for f in term.found if f.kind == "command")
    assert not term.prompt_run.flagged


def test_keys_typed_ahead_do_not() -> None:
    """Four commands typed while ``sleep`` runs: the terminal echoes them on lines with
    no prompt, then the shell reads each at its prompt and draws it again."""
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    entered(term, b"sleep 2", b"", 1)
    ahead = (b"ls", b"pwd", b"id", b"uptime")
    for t, line in enumerate(ahead, 10):
        term.input(line + b"\r", t)
        term.output(line + b"\r\n", t)
    for t, line in enumerate(ahead, 20):
        term.output(PROMPT + line + b"\r\n" + line + b"-output\r\n", t)
    term.output(PROMPT, 30)
    term.finish(40)
    commands = [(f.text, f.certain) for f in term.found if f.kind == "command"]
    assert ("ls", False) in commands
    assert not term.prompt_run.flagged
