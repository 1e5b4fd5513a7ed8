"""From terminal bytes to what a person saw: lines and commands."""

from __future__ import annotations

from consumer.terminal import Found, Terminal

PROMPT = b"deploy@web01:~$ "


def typed(terminal: Terminal, keys: bytes, echo: bytes | None = None, t: int = 1) -> None:
    terminal.input(keys, t)
    terminal.output(keys if echo is None else echo, t)


def texts(terminal: Terminal, kind: str) -> list[str]:
    terminal.flush()
    return [f.text for f in terminal.found if f.kind == kind]


def test_backspace_corrections_give_the_command_as_run() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    typed(term, b"ehco")
    typed(term, b"\x7f\x7f\x7f", b"\x08\x1b[K\x08\x1b[K\x08\x1b[K")
    typed(term, b"cho hi")
    term.input(b"\r", 7)
    term.output(b"\r\nhi\r\n" + PROMPT, 8)
    term.flush()
    assert term.found == [Found("command", "echo hi", 7), Found("output", "hi", 8)]


def test_history_recall_and_tab_completion_are_read_off_the_screen() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    term.input(b"\x1b[A", 1)  # up arrow: the shell draws the recalled command
    term.output(b"cat /etc/hostname", 1)
    term.input(b"\r", 2)
    term.output(b"\r\nweb01\r\n" + PROMPT, 3)
    typed(term, b"ls /va", t=4)
    term.input(b"\t", 5)  # completion: the shell adds what the key stands for
    term.output(b"r/", 5)
    term.input(b"log\r", 6)
    term.output(b"log\r\nsyslog\r\n" + PROMPT, 7)
    assert texts(term, "command") == ["cat /etc/hostname", "ls /var/log"]
    assert texts(term, "output") == ["web01", "syslog"]


def test_typing_ahead_of_the_echo_still_gives_the_command() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(PROMPT, 0)
    term.input(b"uptime\r", 1)  # one write: the echo comes after the Enter
    term.output(b"uptime\r\n 10:00 up 3 days\r\n" + PROMPT, 2)
    term.flush()
    assert term.found == [Found("command", "uptime", 1), Found("output", " 10:00 up 3 days", 2)]


def test_input_the_terminal_did_not_echo_never_becomes_text() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"[sudo] password for deploy: ", 0)
    term.input(b"hunter2\r", 1)  # not echoed (the recorder masks it, too)
    term.output(b"\r\n", 2)
    assert texts(term, "command") == []
    assert texts(term, "output") == ["[sudo] password for deploy:"]


def test_carriage_returns_and_escapes_leave_the_final_line() -> None:
    term = Terminal(80, 24, pty=True)
    term.output(b"progress 10%\rprogress 55%\rprogress 100%\r\n", 0)
    term.output(b"\x1b[1;31mERROR\x1b[0m: disk \x1b[4mfull\x1b[0m\r\n", 1)
    assert texts(term, "output") == ["progress 100%", "ERROR: disk full"]


def test_a_wrapped_line_is_one_line() -> None:
    term = Terminal(20, 5, pty=True)
    term.output(b"0123456789" * 5 + b"\r\n", 0)
    assert texts(term, "output") == ["0123456789" * 5]


def test_without_a_pty_bare_newlines_end_lines_and_nothing_wraps() -> None:
    term = Terminal(0, 0, pty=False)
    term.output(b"first\nsecond " + b"x" * 300 + b"\nthird", 0)
    term.finish(1)
    assert texts(term, "output") == ["first", "second " + "x" * 300, "third"]


def test_a_resize_keeps_working() -> None:
    term = Terminal(80, 24, pty=True)
    term.resize(30, 10)
    term.output(b"a" * 40 + b"\r\n", 0)
    assert texts(term, "output") == ["a" * 40]
