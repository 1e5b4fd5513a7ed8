"""Telling a password prompt from an operator typing blind."""

from __future__ import annotations

from sshtrail import events as ev
from sshtrail.maskedinput import MaskedInputTracker


def fed(*events: ev.Event) -> MaskedInputTracker:
    tracker = MaskedInputTracker()
    for event in events:
        tracker.feed(event)
    return tracker


def test_a_password_is_masked_and_nothing_more() -> None:
    tracker = fed(
        ev.Input(1, b"sudo -v"), ev.Input(2, b"\r"), ev.MaskedInput(3, 12), ev.Input(4, b"\r")
    )
    assert (tracker.verdict, tracker.masked_bytes, tracker.masked_lines) == ("masked", 12, 1)


def test_echo_turned_off_by_the_operator_is_suspicious() -> None:
    typed = [ev.Input(n, bytes([c])) for n, c in enumerate(b"stty -echo")]
    tracker = fed(*typed, ev.Input(20, b"\r"))
    assert tracker.verdict == "suspicious"
    assert fed(ev.Input(1, b"stty raw -echo\r")).verdict == "suspicious"
    assert fed(ev.Input(1, b"stty echo\r")).verdict is None
    assert fed(ev.Input(1, b"sttyx -echo\r")).verdict is None


def test_several_lines_or_a_long_line_typed_blind_are_suspicious() -> None:
    three = fed(
        *(e for n in range(3) for e in (ev.MaskedInput(n * 2, 5), ev.Input(n * 2 + 1, b"\r")))
    )
    assert (three.verdict, three.masked_lines) == ("suspicious", 3)
    long = fed(ev.SealedInput(1, 80, b"x" * 120), ev.Input(2, b"\r"))
    assert long.verdict == "suspicious"


def test_line_editing_is_followed() -> None:
    tracker = fed(
        ev.Input(1, b"stty -ech"), ev.Input(2, b"\x7f"), ev.Input(3, b"\x15"), ev.Input(4, b"ls\r")
    )
    assert tracker.verdict is None


def typed(line: str, t: int = 0) -> list[ev.Event]:
    """A line typed as shown (echoed) and entered."""
    return [ev.Input(t, line.encode()), ev.Input(t, b"\r")]


def blind(count: int = 8, t: int = 0) -> list[ev.Event]:
    """A line typed blind and entered."""
    return [ev.SealedInput(t, count, b"x" * 48), ev.Input(t, b"\r")]


ALTERNATE_ON, ALTERNATE_OFF = ev.Output(0, b"\x1b[?1049h"), ev.Output(0, b"\x1b[?1049l")


def test_keys_an_editor_draws_are_not_masked_input() -> None:
    # vim -u NONE: "ihello from vim" is masked by the gateway (the "i" is never drawn,
    # so the output does not start with it), yet the editor drew the text.
    session = fed(
        *typed("vim -u NONE notes.txt"),
        ev.Output(1, b"\x1b[?1049h\x1b[22;0;0t\x1b[H\x1b[2J~\r\n~"),
        ev.MaskedInput(2, 25),
        ev.Output(2, b"hello from vim"),
        ev.Input(3, b"\x1b"),
        ev.Input(3, b":wq"),
        ev.Output(3, b"\x1b[24;1H:wq"),
        ev.Input(4, b"\r"),
        ev.Output(4, b"\x1b[?1049l"),
        *typed("exit"),
        ev.End(5, "exit status 0", 0, 0, 1, b"k" * 32),
    )
    assert (session.verdict, session.masked_bytes, session.masked_lines) == (None, 0, 0)


def test_keys_a_full_screen_program_owns_are_its_own_even_with_enters() -> None:
    editing = fed(ALTERNATE_ON, *blind(6), *blind(6), *blind(6), *blind(80), ALTERNATE_OFF)
    assert (editing.verdict, editing.masked_lines) == (None, 0)
    # Keys still waiting for an Enter when the program gives the screen back were its own
    # (normal-mode keys, then ZZ), and so were keys typed ahead of a program taking it.
    normal_mode = fed(ALTERNATE_ON, ev.MaskedInput(1, 5), ALTERNATE_OFF, ev.Input(2, b"\x04"))
    assert normal_mode.verdict is None
    assert fed(ev.MaskedInput(1, 5), ALTERNATE_ON, ev.Input(2, b"\r")).verdict is None
    # Once it gave the screen back, blind lines count again.
    after = fed(ALTERNATE_ON, *blind(), ALTERNATE_OFF, *blind())
    assert (after.verdict, after.masked_lines) == ("masked", 1)


def test_a_line_whose_keys_were_shown_late_is_not_blind() -> None:
    late = fed(ev.MaskedInput(1, 2), ev.Input(2, b" -la"), ev.Input(3, b"\r"))
    assert late.verdict is None


def test_keys_typed_blind_and_never_entered_are_still_masked() -> None:
    session = fed(ev.MaskedInput(1, 9), ev.End(2, "closed", 9, 0, 1, b"k" * 32))
    assert (session.verdict, session.masked_bytes, session.masked_lines) == ("masked", 9, 1)


def test_echo_turned_off_is_read_as_the_shell_reads_the_line() -> None:
    for line in (
        "stty -ec''ho",
        'st"t"y -echo',
        "stty $'-echo'",
        "eval 'stty -echo'",
        "x; stty -F /dev/tty -echo",
    ):
        assert fed(*typed(line)).verdict == "suspicious", line
    for line in ("echo stty -echo", "stty echo", "stty -echoe", "sttyx -echo", "echo 'stty -echo'"):
        assert fed(*typed(line)).verdict is None, line
    two_lines = fed(*typed("stty -ec''ho"), *blind(6), *blind(6))
    assert (two_lines.verdict, two_lines.masked_lines) == ("suspicious", 2)


def test_blind_input_handed_to_an_interpreter_is_suspicious() -> None:
    same_line = fed(*typed('read -s c; eval "$c"'), *blind(12))
    assert (same_line.verdict, same_line.masked_lines) == ("suspicious", 1)
    for later in (
        'eval "$c"',
        "eval $c",
        'echo "$c" | bash',
        'sh -c "${c}"',
        '. /dev/stdin <<< "$c"',
    ):
        session = fed(*typed("IFS= read -rs c"), *blind(12), *typed("ls"), *typed(later))
        assert session.verdict == "suspicious", later
    array = fed(*typed("read -s -a words"), *blind(), *typed('eval "${words[@]}"'))
    assert array.verdict == "suspicious"
    reply = fed(*typed("read -s"), *blind(), *typed('source <(echo "$REPLY")'))
    assert reply.verdict == "suspicious"


def test_a_password_read_and_used_is_only_masked() -> None:
    for after in ('mysql -p"$pw"', '. "$HOME/.profile"', 'eval "$other"', "bash"):
        session = fed(*typed("read -s -p 'Password: ' pw"), *blind(12), *typed(after))
        assert (session.verdict, session.masked_lines) == ("masked", 1), after
    assert fed(*typed("read -s c"), *blind(12)).verdict == "masked"
    # Read as shown (echo on), the text is on screen: nothing was hidden.
    assert fed(*typed('read c; eval "$c"'), *typed("ls")).verdict is None
    assert fed(*typed('read -s c; eval "$c"'), *typed("ls"), *blind()).verdict == "masked"
    sudo = fed(*typed("sudo -v"), *blind(12), *typed("sudo -k"), *typed("bash -c 'ls'"))
    assert sudo.verdict == "masked"


def test_the_names_read_stay_bounded() -> None:
    lines = [f"read -s {' '.join(f'v{n}_{k}' for k in range(30))}" for n in range(4)]
    session = fed(*(e for line in lines for e in [*typed(line), *blind()]))
    assert 200 < len(session.reads) <= 256
    assert fed(*typed(lines[0]), *blind(), *typed("read -s c"), *blind()).reads.endswith(" c")
    later = fed(*session_events(lines), *typed("read -s c"), *blind(), *typed('eval "$c"'))
    assert later.verdict == "suspicious"


def session_events(lines: list[str]) -> list[ev.Event]:
    return [e for line in lines for e in [*typed(line), *blind()]]
