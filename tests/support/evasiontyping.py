"""Issue 41's sessions typed in bash: the keys of its cases, each line's output awaited.

Driven by tests/integration/test_evasion_score.py through the real gateway; a case's
marker is ``m(number)``. Lines print ``$((40+2))`` so that their output (``-42``) is
told from their echo.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pexpect

from tests.support.waiting import wait_for

PROMPT = "ready-prompt> "


def keys(child: pexpect.spawn, text: str, pause: float = 0.01) -> None:
    """Typed one key at a time, as a person (and readline's redraws) would have it."""
    for key in text:
        child.send(key)
        time.sleep(pause)


def sent(child: pexpect.spawn, line: str, *expected: str) -> None:
    child.sendline(line)
    for text in expected:
        child.expect(re.escape(text))


def mark(run: str, number: int) -> str:
    return f"k{run}n{number:02d}"


def typed_session(child: pexpect.spawn, m: Callable[[int], str], tdir: Path) -> None:
    """Cases 1-14 in one bash session, each line's output awaited before the next."""
    keys(child, f"rm junk\x15cho {m(1)}-$((40+2))zz\x7f\x7f\x01e\r")
    child.expect(f"{m(1)}-42")
    child.expect(PROMPT)
    (tdir / f"tab-{m(2)}-file").touch()
    keys(child, f"ls {tdir}/tab-\t")
    child.expect(f"tab-{m(2)}-file")
    child.send("\r")
    child.expect(PROMPT)
    sent(child, f"echo {m(3)}-$((40+2))", f"{m(3)}-42", PROMPT)
    keys(child, f"\x12{m(3)}-$((4")
    child.send("\r")
    child.expect(f"{m(3)}-42")
    child.expect(PROMPT)
    sent(child, "cat <<EOF", "> ")
    sent(child, f"{m(4)}-heredoc", "> ")
    sent(child, "EOF", f"{m(4)}-heredoc", PROMPT)
    child.send(f"\x1b[200~echo {m(5)}-$((40+2))\x1b[201~")
    child.expect(re.escape(f"{m(5)}-$((40+2))"))
    child.send("\r")
    child.expect(f"{m(5)}-42")
    child.expect(PROMPT)
    sent(child, f"python3 -c 'print(\"{m(6)}-\" + str(6*7))'", f"{m(6)}-42", PROMPT)
    multi = f"echo {m(7)}-a; touch {tdir}/multi-{m(7)} && echo {m(7)}-$((40+2))"
    sent(child, multi, f"{m(7)}-42", PROMPT)
    sent(child, "tou\\", "> ")
    sent(child, f"ch {tdir}/cont-{m(8)}", PROMPT)
    sent(child, f"echo {m(9)}-$((40+2))", f"{m(9)}-42", PROMPT)
    sent(child, "echo other-$((1+1))", "other-2", PROMPT)
    sent(child, "!-2", f"{m(9)}-42", PROMPT)
    sent(child, f"rm -f {tdir}/fc-{m(10)}", PROMPT)
    sent(child, "fc -s rm=ls", "No such file", PROMPT)
    sent(child, "alias mkf=touch", PROMPT)
    sent(child, f"mkf {tdir}/alias-{m(11)}", PROMPT)
    for word in ("first", "second"):  # Ctrl-O: tests/integration/test_evasion.py
        sent(child, f"echo {word}-$((1+1))-{m(12)}", f"{word}-2-{m(12)}", PROMPT)
    child.send("\x1b[A\x1b[A")
    child.expect(re.escape(f"first-$((1+1))-{m(12)}"))
    child.send("\x0f")
    child.expect(f"first-2-{m(12)}")
    child.expect(re.escape(f"second-$((1+1))-{m(12)}"))
    child.send("\x0f")
    child.expect(f"second-2-{m(12)}")
    child.sendcontrol("c")
    sent(child, "echo sync-$((2+3))", "sync-5", PROMPT)
    sent(child, r"""bind -x '"\C-t": eval "$READLINE_LINE"; READLINE_LINE='""", PROMPT)
    keys(child, f"touch {tdir}/bound-{m(13)}", 0.005)
    child.expect(f"bound-{m(13)}")
    child.send("\x14")
    wait_for((tdir / f"bound-{m(13)}").exists, timeout=20, what="Ctrl-T ran it")
    sent(child, "echo sync-$((3+3))", "sync-6", PROMPT)
    sent(child, f"vim -u NONE -n {tdir}/notes.txt", "notes.txt")
    # Enter once vim shows the whole command line, as a person presses it: under load
    # the last key and Enter reached vim in one read, vim ran the line without drawing
    # that key, and the screen (what the reader reads here) held the line one short.
    keys(child, f":!touch {tdir}/from-vim-{m(14)}")
    child.expect(re.escape(m(14)))
    keys(child, "\r")
    child.expect("Press ENTER")
    child.send("\r:q!\r")
    child.expect(PROMPT)
    for name in ("multi", "cont", "alias", "bound", "from-vim"):
        assert list(tdir.glob(f"{name}-*")), name  # each ran


def editors_session(child: pexpect.spawn, m: Callable[[int], str], tdir: Path) -> None:
    """Cases 15 and 17: text typed into vim and nano, and vim exiting at once."""
    sent(child, f"vim -u NONE -n {tdir}/typed-{m(15)}.txt", f"typed-{m(15)}.txt")
    keys(child, f"ihello from vim {m(15)}")
    time.sleep(0.5)  # the screen stays a moment: a screen document
    keys(child, "\x1b:wq\r")
    child.expect(PROMPT)
    sent(child, f"nano --ignorercfiles {tdir}/nano-{m(15)}.txt", "GNU nano")
    keys(child, f"hello from nano {m(15)}")
    time.sleep(0.5)
    keys(child, "\x0f")  # ^O: write out, then the file name asked for and taken
    child.expect("File Name to Write")
    keys(child, "\r")
    child.expect("Wrote")
    keys(child, "\x18")  # ^X: exit
    child.expect(PROMPT)
    sent(child, r"""PS1='\[\e]0;root@host: ~\a\]root@host:~# '""", "~# '", "root@host:~# ")
    sent(child, f"vim -u NONE -c 'normal itext' -c 'w! {tdir}/quit-{m(17)}' -c 'q'")
    child.expect("root@host:~# ")
    sent(child, "echo sync-$((2+5))", "sync-7", "root@host:~# ")
    assert (tdir / f"typed-{m(15)}.txt").read_text() == f"hello from vim {m(15)}\n"
    assert (tdir / f"nano-{m(15)}.txt").read_text() == f"hello from nano {m(15)}\n"
    assert (tdir / f"quit-{m(17)}").read_text() == "text\n"


def exits(child: pexpect.spawn, how: str = "exit\r") -> None:
    child.send(how)
    child.expect(pexpect.EOF)
    child.close()
