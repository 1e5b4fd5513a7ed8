"""What a Sigma rule is matched against: the processes a command line starts, as Sigma's
``process_creation`` log source describes them (docs/alerts.md).

A command line read by the shared command reader (:mod:`sshtrail.terminal`, as the
index and the command policy read it) starts one process per simple command, split as
the shell splits it (:mod:`sshtrail.shellwords`: ``;``, ``&&``, ``|``, ``$(...)``,
``sh -c``, ``eval``). Each is an event:

* ``CommandLine`` -- its words joined by blanks, quotes removed: what ``ps`` and the
  kernel's audit log show for a process (``/proc/PID/cmdline``);
* ``Image`` -- its program's path: the word itself when it names a path, otherwise
  ``/usr/bin/NAME``. The gateway cannot see ``PATH`` on the target; ``/usr/bin`` is
  where a merged-``/usr`` distribution (Debian, Ubuntu, Fedora, Arch) has every
  command a person types, and rules match images with ``|endswith: '/NAME'``, which
  any directory satisfies;
* ``ParentImage`` -- the shell that starts it: ``/usr/bin/sh`` for an exec request
  (sshd hands it to the login shell with ``-c``) and for what ``sh -c`` runs, the
  interpreter named for ``bash -c``/``zsh -c``; ``/usr/bin/bash`` for a line typed at
  a prompt (the recording does not say which shell the target runs);
* ``User`` -- the account on the target.

The whole line as typed is one more event (``CommandLine`` the line, ``Image`` its first
program), so a rule on what joins processes (``curl ... | sh``) sees the pipe. A rule
matching several events of one line raises one alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sshtrail.shellwords import commands

#: Where a bare command name is taken to live (see the module text).
BIN = "/usr/bin/"
#: The shell a line typed at a prompt is taken to run in.
PROMPT_SHELL = "/usr/bin/bash"
#: The shell sshd runs an exec request's command with.
EXEC_SHELL = "/usr/bin/sh"
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})
#: Programs that run the program named after them (and their options), and the
#: options of theirs that take the next word as a value (``sudo -u root``).
_WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T"}),
    "doas": frozenset({"-u", "-C"}),
    "nohup": frozenset(),
    "exec": frozenset({"-a"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chroot": frozenset(),
    "xargs": frozenset({"-I", "-n", "-P", "-d", "-E", "-L", "-s", "-a"}),
    "busybox": frozenset(),
    "strace": frozenset({"-e", "-o", "-p", "-s"}),
}
#: Wrappers whose first word after their options is not the program (``timeout 9 CMD``,
#: ``chroot DIR CMD``).
_LEADING_ARGUMENT = frozenset({"timeout", "chroot"})
#: At most this many distinct processes are taken from one line: the first and the
#: last half of them, when there are more.
MAX_EVENTS = 256

Event = Mapping[str, str]


def image_of(program: str) -> str:
    """The path a program word runs (see the module text)."""
    return program if "/" in program else BIN + program


def command_events(line: str, user: str | None, exec_request: bool = False) -> list[dict[str, str]]:
    """The events ``line`` starts: the whole line, then each process of each simple
    command (a wrapper such as ``sudo`` or ``env`` and the program it runs are two).
    ``$IFS`` standing for a blank (``cat${IFS}/etc/shadow``) is read as one."""
    parent = EXEC_SHELL if exec_request else PROMPT_SHELL
    spaced = _IFS.sub(" ", line)
    processes: dict[tuple[str, str, str], None] = {}  # distinct, in order
    inner_parent = parent
    for words in commands(spaced):
        chain = _chain(words)
        for at, (start, _) in enumerate(chain):
            launcher = inner_parent if at == 0 else image_of(words[chain[at - 1][0]])
            processes[(" ".join(words[start:]), image_of(words[start]), launcher)] = None
        if chain:
            program = words[chain[-1][0]]
            if program.rsplit("/", 1)[-1] in _SHELLS and _runs_a_string(words[chain[-1][0] :]):
                inner_parent = image_of(program)  # what it runs comes next in the list
    kept = list(processes)
    if len(kept) > MAX_EVENTS:
        kept = kept[: MAX_EVENTS // 2] + kept[-MAX_EVENTS // 2 :]
    events = [
        {"CommandLine": command, "Image": image, "ParentImage": launcher}
        for command, image, launcher in kept
    ]
    whole = {"CommandLine": line, "ParentImage": parent}
    if events:
        whole["Image"] = events[0]["Image"]
    events.insert(0, whole)
    if user:
        for event in events:
            event["User"] = user
    return events


def _chain(words: list[str]) -> list[tuple[int, str]]:
    """Where each process of a simple command is named: a wrapper (``sudo``, ``env``,
    ``timeout``...) and the program it runs are each one, past ``A=1`` assignments and
    the wrappers' options (with their values)."""
    chain: list[tuple[int, str]] = []
    at, n = 0, len(words)
    while at < n and _assignment(words[at]):
        at += 1
    while at < n:
        name = words[at].rsplit("/", 1)[-1]
        chain.append((at, name))
        takes = _WRAPPERS.get(name)
        if takes is None:
            break
        at += 1
        while at < n and (words[at].startswith("-") or _assignment(words[at])):
            at += 2 if words[at] in takes else 1
        if name in _LEADING_ARGUMENT:
            at += 1
    return chain


def _runs_a_string(words: list[str]) -> bool:
    """Whether a shell's words hand it a command string: ``-c``, or ``-lc``, ``-ic``."""
    return any(w.startswith("-") and not w.startswith("--") and "c" in w for w in words[1:])


def _assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier()


_IFS = re.compile(r"\$\{?IFS\}?")
