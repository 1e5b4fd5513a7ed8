"""Ways to hide what was run, typed through the real gateway to a real sshd in bash, then
indexed by a real index member and searched (issue 41): a shell on the alternate screen
with a prompt and a DEBUG trap that home the cursor and delete every line, and a
backslash-continued line."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support.consumers import wait_for
from tests.support.gateway import GatewayProcess
from tests.support.indexmember import index_member, searched
from tests.support.kafka import Broker
from tests.support.sshd import SshdTarget

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(tmp_path: Path, broker: Broker, sshd: SshdTarget) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gw", broker.bootstrap_servers, sshd)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def indexed(tmp_path: Path, gateway: GatewayProcess, broker: Broker) -> Iterator[Path]:
    """An index member on the gateway's topic; yields the settings to search with."""
    with index_member(tmp_path, broker.bootstrap_servers, gateway.topic) as config:
        yield config


def bash(gateway: GatewayProcess) -> pexpect.spawn:
    argv = gateway.ssh("alice:t1", tty=True)
    child = pexpect.spawn(
        argv[0], argv[1:], timeout=20, dimensions=(24, 120), env={**os.environ, "TERM": "xterm"}
    )
    child.expect(r"[$#] ")  # the login shell's prompt (keys typed ahead of it are
    # read too, but then its prompt is only guessed: tests/unit/test_terminal.py)
    child.sendline("exec bash --norc --noprofile")
    child.sendline("PS1='ready-prompt> '")
    child.expect("ready-prompt> ")
    child.expect("ready-prompt> ")
    return child


def test_a_shell_that_hides_on_the_alternate_screen_and_erases_its_lines_is_still_read(
    gateway: GatewayProcess, indexed: Path, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    child.sendline("tput smcup")
    child.expect("ready-prompt> ")
    child.sendline(r"""PS1='\[\e[H\e[99M\]$ '; trap 'printf "\e[H\e[99M"' DEBUG""")
    child.expect(r"\$ ")
    child.sendline(f"touch {tmp_path}/hidden-{mark}")
    child.expect(r"\$ ")
    child.sendline(f"echo out-$((6*7))-{mark}")
    child.expect(f"out-42-{mark}")
    child.sendline("tou\\")
    child.expect("> ")
    child.sendline(f"ch {tmp_path}/continued-{mark}")
    child.expect(r"\$ ")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert (tmp_path / f"hidden-{mark}").exists()

    def commands() -> list[str]:
        return [str(hit["text"]) for hit in searched(indexed, mark, "--kind", "command")]

    wait_for(lambda: bool(searched(indexed, f"continued-{mark}")), timeout=60, what="indexing")
    found = commands()
    everything = [(hit["kind"], hit["text"]) for hit in searched(indexed, mark)]
    assert f"touch {tmp_path}/hidden-{mark}" in found, everything
    assert f"echo out-$((6*7))-{mark}" in found
    assert f"touch {tmp_path}/continued-{mark}" in found  # one command, not two pieces
    assert not any(text.startswith("tou") and text.endswith("\\") for text in found)
    # The output the prompt deleted right after it was drawn is found too.
    assert searched(indexed, f"out-42-{mark}")


def test_lines_run_with_ctrl_o_are_read_as_commands(gateway: GatewayProcess, indexed: Path) -> None:
    """bash's Ctrl-O runs the line without an Enter and puts the next line of the history
    on the prompt: each line it runs is a command, the fetched one not a prompt."""
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    for word in ("first", "second"):
        child.sendline(f"echo {word}-$((1+1))-{mark}")
        child.expect(f"{word}-2-{mark}")
        child.expect("ready-prompt> ")
    child.send("\x1b[A\x1b[A")  # the first line again, from the history
    child.expect(re.escape(f"first-$((1+1))-{mark}"))  # (bash redraws only what changed)
    child.send("\x0f")  # runs it, and shows the second
    child.expect(f"first-2-{mark}")
    child.expect(re.escape(f"second-$((1+1))-{mark}"))
    child.send("\x0f")
    child.expect(f"second-2-{mark}")
    child.expect("ready-prompt> ")
    child.sendcontrol("c")
    child.sendline("exit")
    child.expect(pexpect.EOF)

    def runs(word: str) -> int:
        hits = searched(indexed, f"{word}-$((1+1))-{mark}", "--kind", "command")
        return sum(str(hit["text"]) == f"echo {word}-$((1+1))-{mark}" for hit in hits)

    wait_for(lambda: runs("second") >= 2, timeout=60, what="indexing")
    assert runs("first") >= 2  # typed, then run again with Ctrl-O


def test_a_command_run_from_vim_is_read_as_a_command(
    gateway: GatewayProcess, indexed: Path, tmp_path: Path
) -> None:
    """vim's ``:!cmd`` hands a command to a shell: it is a command of the session (marked
    uncertain: a program's command line, not a shell's prompt), not only screen text."""
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    child.sendline(f"vim -u NONE -n {tmp_path / 'notes.txt'}")
    child.expect("notes.txt")
    for key in f":!touch {tmp_path}/from-vim-{mark}\r":  # typed, each key echoed
        child.send(key)
        time.sleep(0.01)
    child.expect("Press ENTER")
    child.send("\r:q!\r")
    child.expect("ready-prompt> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert (tmp_path / f"from-vim-{mark}").exists()

    def commands() -> list[str]:
        hits = searched(indexed, f"from-vim-{mark}", "--kind", "command")
        return [str(hit["text"]) for hit in hits]

    wait_for(lambda: bool(commands()), timeout=60, what="the command from vim indexed")
    assert f"touch {tmp_path}/from-vim-{mark}" in commands()


def test_a_history_expansion_is_listed_as_typed_and_as_what_ran(
    gateway: GatewayProcess, indexed: Path
) -> None:
    """bash prints the line a history expansion (``!-2``, ``!!``) or ``fc -s`` makes before
    running it: both what was typed and what ran are commands, the second uncertain; an
    expansion that fails ran nothing."""
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    for line in (
        f"echo first-{mark}",
        f"echo second-{mark}",
        "!-2",
        f"fc -s first=third-{mark} echo",
    ):
        child.sendline(line)
        child.expect("ready-prompt> ")
    child.sendline("!nothing-like-it")
    child.expect("event not found")
    child.expect("ready-prompt> ")
    child.sendline("exit")
    child.expect(pexpect.EOF)

    def commands() -> list[tuple[str, object]]:
        hits = searched(indexed, mark, "--kind", "command")
        return sorted((str(hit["text"]), hit.get("certain")) for hit in hits)

    wait_for(lambda: any("third" in text for text, _ in commands()), timeout=60, what="indexing")
    texts = [text for text, _ in commands()]
    assert texts.count(f"echo first-{mark}") == 2, commands()  # typed, and run by !-2
    assert f"echo third-{mark}-{mark}" in texts, commands()  # what fc -s ran


def test_a_key_bound_with_bind_x_runs_a_command_that_is_read(
    gateway: GatewayProcess, indexed: Path, tmp_path: Path
) -> None:
    """``bind -x`` makes a key run a shell command, no Enter: here Ctrl-T runs the line on
    screen (``eval "$READLINE_LINE"``). The bound command and the line it ran are read as
    commands, uncertain."""
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    child.sendline(r"""bind -x '"\C-t": eval "$READLINE_LINE"; READLINE_LINE='""")
    child.expect("ready-prompt> ")
    for key in f"touch {tmp_path}/bound-{mark}":
        child.send(key)
        time.sleep(0.005)
    child.expect(f"bound-{mark}")
    child.send("\x14")  # Ctrl-T
    wait_for((tmp_path / f"bound-{mark}").exists, timeout=20, what="Ctrl-T ran it")
    child.sendline("exit")
    child.expect(pexpect.EOF)

    def commands() -> list[str]:
        hits = searched(indexed, f"bound-{mark}", "--kind", "command")
        return [str(hit["text"]) for hit in hits]

    wait_for(lambda: bool(commands()), timeout=60, what="the line Ctrl-T ran, indexed")
    assert f"touch {tmp_path}/bound-{mark}" in commands()


def test_an_alias_is_listed_as_typed_and_as_what_it_ran(
    gateway: GatewayProcess, indexed: Path, tmp_path: Path
) -> None:
    """An alias the session defined runs something else than its name says: the command
    is listed as typed (certain) and as the aliases made it (uncertain: bash does not
    show it) -- the word after a value ending in a blank too, quoted text left alone;
    after ``unalias`` the name is only what was typed."""
    mark = uuid.uuid4().hex[:8]
    first, second = tmp_path / f"{mark}-1", tmp_path / f"{mark}-2"
    child = bash(gateway)
    child.sendline("alias mk='touch' sudo='env '")
    child.expect("ready-prompt> ")
    child.sendline(f"sudo mk {first}; echo 'mk {mark}-q'")
    child.expect(f"mk {mark}-q")
    child.sendline("unalias mk")
    child.expect("ready-prompt> ")
    child.sendline(f"mk {second} || true")
    child.expect("mk: command not found")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert first.exists()
    assert not second.exists()
    hits: list[tuple[str, object]] = []

    def commands() -> bool:
        found = searched(indexed, mark, "--kind", "command")
        hits[:] = sorted((str(hit["text"]), hit.get("certain")) for hit in found)
        return len(hits) >= 3

    wait_for(commands, timeout=60, what="the commands indexed")
    assert (f"sudo mk {first}; echo 'mk {mark}-q'", True) in hits, hits
    # (the value's blank, then the one typed: the line as bash makes it)
    assert (f"env  touch {first}; echo 'mk {mark}-q'", False) in hits, hits
    assert (f"mk {second} || true", True) in hits, hits
    assert len(hits) == 3, hits


def test_a_full_screen_program_that_exits_at_once_is_one_clean_command(
    gateway: GatewayProcess, indexed: Path, tmp_path: Path
) -> None:
    """vim run with ``-c 'q'`` switches to the alternate screen and back before a key is
    typed; under a prompt that sets the window title (Debian's default), the command was
    once listed with the prompt and itself glued on again (issue 41)."""
    mark = uuid.uuid4().hex[:8]
    child = bash(gateway)
    child.sendline(r"""PS1='\[\e]0;root@host: ~\a\]root@host:~# '""")
    child.expect("root@host:~# ")
    written = tmp_path / f"vim-{mark}"
    child.sendline(f"vim -u NONE -c 'normal itext' -c 'w! {written}' -c 'q'")
    child.expect("root@host:~# ")
    child.sendline(f"echo done-{mark}")
    child.expect(f"done-{mark}")
    child.sendline("exit")
    child.expect(pexpect.EOF)
    assert written.read_text() == "text\n"
    wait_for(lambda: bool(searched(indexed, f"done-{mark}")), timeout=60, what="indexing")
    commands = [str(hit["text"]) for hit in searched(indexed, f"vim-{mark}", "--kind", "command")]
    assert commands == [f"vim -u NONE -c 'normal itext' -c 'w! {written}' -c 'q'"]
