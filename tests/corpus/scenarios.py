"""The search corpus: sessions typed as operators type them, and what each must yield.

Each :class:`Scenario` is a program started with a PTY through the real gateway
(``ssh -tt``), then keys typed a few at a time with pauses as a person types,
each step waiting for what the screen must show before the next. ``commands``
are the command lines a shell ran, in order, exactly as the operator meant
them; ``screens`` are texts a full-screen program displayed that search must
find. ``python -m tests.corpus.record`` records them into ``recordings/``;
``tests/integration/test_corpus.py`` scores the index against them.

Keys: ``\\r`` Enter, ``\\t`` Tab, ``\\x7f`` Backspace, ``\\x1b[A`` Up, ``\\x1b[D``
Left, ``\\x03`` Ctrl-C, ``\\x12`` Ctrl-R, ``\\x15`` Ctrl-U, ``\\x17`` Ctrl-W.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The folder the sessions work in: created by the recorder, holding these files.
FILES = {
    "notes.txt": "first line\nVIM-MARKER-7215 in the notes\nthird line\n",
    "pager.txt": "".join(
        "LESS-MARKER-5093 shown by less\n" if n == 120 else f"pager line {n}\n"
        for n in range(1, 301)
    ),
    "doc.txt": "NANO-MARKER-3377 in a file nano opens\n",
}


@dataclass(frozen=True)
class Step:
    """Keys to type, then what the session must show (a regular expression)."""

    keys: str
    expect: str | None = None
    #: Seconds to wait after the step (a person reading the screen).
    pause: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    #: The command the PTY session runs (``cd`` into the work folder is prepended).
    program: str
    #: What the first prompt looks like, before the first step.
    ready: str
    steps: tuple[Step, ...]
    commands: tuple[str, ...]
    screens: tuple[str, ...] = field(default=())


def _bash(prompt: str = r"root@vm:\W# ") -> str:
    return f"env PS1='{prompt}' PS2='> ' HISTFILE=/dev/null bash --norc --noprofile -i"


PROMPT = r"root@vm:\S*# $"

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "bash-fullscreen",
        _bash(),
        PROMPT,
        (
            Step("vim -u NONE notes.txt\r", "VIM-MARKER", pause=1.2),
            Step(":q\r", PROMPT),
            Step("less pager.txt\r", "pager line 5", pause=1.0),
            Step("/LESS-MARK\r", "pager line 14", pause=1.0),
            Step("q", PROMPT),
            Step("echo after-$((40+2))\r", "after-42"),
            Step("ls /nonexistent\r", "No such file"),
            Step("cd /tmp\r", r"root@vm:tmp# $"),
            Step("exit 4\r", None),
        ),
        (
            "vim -u NONE notes.txt",
            "less pager.txt",
            "echo after-$((40+2))",
            "ls /nonexistent",
            "cd /tmp",
            "exit 4",
        ),
        ("VIM-MARKER-7215 in the notes", "LESS-MARKER-5093 shown by less", "pager line 3"),
    ),
    Scenario(
        "bash-editing",
        _bash(),
        PROMPT,
        (
            Step("ehco\x7f\x7f\x7fcho typo-fixed\r", "typo-fixed\r\n"),
            Step("echo wrong words\x15echo line-killed\r", "line-killed\r\n"),
            Step("echo one two\x17three\r", "one three\r\n"),
            Step("\x1b[A\r", "one three\r\n.*one three\r\n"),
            Step("echo ABC\x1b[D\x1b[DX\r", "AXBC"),
            Step("ls /us\t", "/usr/"),
            Step("\r", PROMPT),
            Step("\x12typo\x12", "typo"),
            Step("\r", "typo-fixed\r\n"),
            Step("for i in 1 2\r", "> "),
            Step("do echo item-$i\r", "> "),
            Step("done\r", "item-2"),
            Step(
                "echo this is a long command line that wraps past the eighty columns of "
                "the terminal and goes on LONG-END\r",
                "LONG-END\r\n",
            ),
            Step("sleep 30\r", None, pause=0.5),
            Step("\x03", PROMPT),
            Step("PS1='changed$ '\r", r"changed\$ $"),
            Step("echo new-prompt\r", r"new-prompt\r\n"),
            Step("exit\r", None),
        ),
        (
            "echo typo-fixed",
            "echo line-killed",
            "echo one three",
            "echo one three",
            "echo AXBC",
            "ls /usr/",
            "echo typo-fixed",
            "for i in 1 2",
            "do echo item-$i",
            "done",
            "echo this is a long command line that wraps past the eighty columns of the "
            "terminal and goes on LONG-END",
            "sleep 30",
            "PS1='changed$ '",
            "echo new-prompt",
            "exit",
        ),
    ),
    Scenario(
        "bash-nested-shells",
        _bash(),
        PROMPT,
        (
            Step("env PS1='inner> ' bash --norc --noprofile -i\r", r"inner> $"),
            Step("echo inside-$((1+1))\r", "inside-2"),
            Step("exit\r", PROMPT),
            Step("sh -i\r", r"root@vm:\\W# $"),  # dash shows PS1 as it is, \W and all
            Step("echo in-dash\r", "in-dash\r\n"),
            Step("exit\r", PROMPT),
            Step("exit\r", None),
        ),
        (
            "env PS1='inner> ' bash --norc --noprofile -i",
            "echo inside-$((1+1))",
            "exit",
            "sh -i",
            "echo in-dash",
            "exit",
            "exit",
        ),
    ),
    Scenario(
        "dash",
        "env PS1='$ ' dash -i",
        r"\$ $",
        (
            Step("echo dash-$((3*3))\r", "dash-9"),
            Step("cd /tmp && pwd\r", "/tmp\r\n"),
            Step("ls /nonexistent\r", "No such file"),
            Step("exit 2\r", None),
        ),
        ("echo dash-$((3*3))", "cd /tmp && pwd", "ls /nonexistent", "exit 2"),
    ),
    Scenario(
        "zsh",
        "env PROMPT='zsh%# ' HISTFILE=/dev/null zsh -f -i",
        r"zsh# ",
        (
            Step("echo zsh-$((5+5))\r", "zsh-10"),
            Step("ehco\x7f\x7f\x7fcho fixed-in-zsh\r", "fixed-in-zsh\r\n"),
            Step("\x1b[A\r", "(?s)fixed-in-zsh.*fixed-in-zsh.*zsh# "),
            Step("ls /usr/\r", "(?s)bin.*zsh# "),
            Step("exit\r", None),
        ),
        (
            "echo zsh-$((5+5))",
            "echo fixed-in-zsh",
            "echo fixed-in-zsh",
            "ls /usr/",
            "exit",
        ),
    ),
    Scenario(
        "fish",
        "env HOME=/tmp fish --no-config -i",
        r"# ",
        (
            Step("echo fish-(math 6 \\* 7)\r", "fish-42"),
            Step("echo second\r", "second\r\n"),
            Step("ls /nonexistent\r", "No such file"),
            Step("exit\r", None),
        ),
        ("echo fish-(math 6 \\* 7)", "echo second", "ls /nonexistent", "exit"),
    ),
    Scenario(
        "programs",
        _bash(),
        PROMPT,
        (
            Step("man -P less ls\r", "LS", pause=1.0),
            Step("q", PROMPT),
            Step("top\r", "load average", pause=1.5),
            Step("q", PROMPT),
            Step("nano doc.txt\r", "NANO-MARKER", pause=1.0),
            Step("\x18", PROMPT),
            Step("tmux -f /dev/null new-session -s corpus\r", r"\$ |# ", pause=1.0),
            Step("echo TMUX-MARKER-8080\r", "TMUX-MARKER-8080\r?\n", pause=1.0),
            Step("exit\r", PROMPT),
            Step("screen -q\r", r"\$ |# ", pause=1.0),
            Step("echo SCREEN-MARKER-4242\r", "SCREEN-MARKER-4242\r?\n", pause=1.0),
            Step("exit\r", PROMPT),
            Step("exit\r", None),
        ),
        (
            "man -P less ls",
            "top",
            "nano doc.txt",
            "tmux -f /dev/null new-session -s corpus",
            "screen -q",
            "exit",
        ),
        (
            "list directory contents",
            "SYNOPSIS",
            "load average",
            "Tasks:",
            "GNU nano",
            "NANO-MARKER-3377",
            "TMUX-MARKER-8080",
            "SCREEN-MARKER-4242",
        ),
    ),
)
