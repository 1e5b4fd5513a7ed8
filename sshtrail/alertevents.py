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

from collections.abc import Mapping

from sshtrail.shellwords import commands

#: Where a bare command name is taken to live (see the module text).
BIN = "/usr/bin/"
#: The shell a line typed at a prompt is taken to run in.
PROMPT_SHELL = "/usr/bin/bash"
#: The shell sshd runs an exec request's command with.
EXEC_SHELL = "/usr/bin/sh"
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})
#: Words before a program that do not name it: ``env``, ``sudo``, ``nohup`` ...
_WRAPPERS = frozenset({"env", "sudo", "nohup", "exec", "command", "time", "nice", "doas"})
#: At most this many processes are taken from one line.
MAX_EVENTS = 64

Event = Mapping[str, str]


def image_of(program: str) -> str:
    """The path a program word runs (see the module text)."""
    return program if "/" in program else BIN + program


def command_events(line: str, user: str | None, exec_request: bool = False) -> list[dict[str, str]]:
    """The events ``line`` starts: the whole line, then each process of each simple
    command (a wrapper such as ``sudo`` or ``env`` and the program it runs are two)."""
    parent = EXEC_SHELL if exec_request else PROMPT_SHELL
    events: list[dict[str, str]] = []
    inner_parent = parent
    for words in commands(line):
        at = _program_at(words)
        if at is None:
            continue
        first = next((i for i, word in enumerate(words) if not _assignment(word)), at)
        if first < at:  # a wrapper (sudo, env, nohup ...) starts the program
            events.append(_process(words[first:], inner_parent))
            events.append(_process(words[at:], image_of(words[first])))
        else:
            events.append(_process(words[at:], inner_parent))
        name = words[at].rsplit("/", 1)[-1]
        if name in _SHELLS and "-c" in words[at:]:
            inner_parent = image_of(words[at])  # what it runs comes next in the list
        if len(events) >= MAX_EVENTS:
            break
    whole = {"CommandLine": line, "ParentImage": parent}
    if events:
        whole["Image"] = events[0]["Image"]
    events.insert(0, whole)
    if user:
        for event in events:
            event["User"] = user
    return events


def _process(words: list[str], parent: str) -> dict[str, str]:
    return {"CommandLine": " ".join(words), "Image": image_of(words[0]), "ParentImage": parent}


def _program_at(words: list[str]) -> int | None:
    """Where the program a simple command runs is named: past ``A=1`` assignments and
    wrappers such as ``env`` and ``sudo`` (and their options)."""
    for at, word in enumerate(words):
        if _assignment(word) or word.startswith("-"):
            continue
        if word.rsplit("/", 1)[-1] in _WRAPPERS:
            continue
        return at
    return None


def _assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier()
