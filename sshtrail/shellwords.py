"""A command line read as a POSIX shell would split it: simple commands and their words.

What command policy (``sshtrail/commandpolicy.py``) checks is each simple command an
operator's line runs: ``a; b && c | d`` is four, and so are the commands inside
``$(...)`` and backticks, and the command line a shell is handed with ``sh -c`` /
``bash -c`` or ``eval``. Each simple command is its words with the quoting removed, so a
quoted string stays one word: ``echo "rm -rf /"`` runs ``echo`` with one argument, and a
rule naming ``rm`` does not match it, while ``bash -c "rm -rf /"`` runs ``rm``, and does.

Not a shell: no expansion of variables, globs, aliases or history (what ``$CMD`` holds
is not known at the gateway; see docs/policy.md, "What policy sees"), and a line the
shell would call a syntax error (an unclosed quote) is read as far as it goes.
"""

from __future__ import annotations

#: Words that run the command line they are given, after some options.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})
#: Nesting of ``$(...)``, ``bash -c`` in ``bash -c`` ... followed at most.
MAX_DEPTH = 8
_OPERATORS = (";", "&", "|", "\n")


def commands(line: str) -> list[list[str]]:
    """The simple commands ``line`` runs, each as its words (quotes removed), in order,
    the commands inside ``$(...)``, backticks, ``sh -c`` and ``eval`` among them."""
    found: list[list[str]] = []
    _read(line, found, 0)
    return found


def _read(line: str, found: list[list[str]], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    words: list[str] = []
    word: list[str] = []
    started = False  # a word has begun (a quoted empty string is a word)
    i, n = 0, len(line)

    def end_word() -> None:
        nonlocal word, started
        if started:
            words.append("".join(word))
        word, started = [], False

    def end_command() -> None:
        end_word()
        if words:
            found.append(list(words))
            _inner(words, found, depth)
        words.clear()

    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            if line[i + 1] != "\n":  # backslash-newline joins the lines
                word.append(line[i + 1])
                started = True
            i += 2
        elif c == "'":
            close = line.find("'", i + 1)
            close = n if close < 0 else close
            word.append(line[i + 1 : close])
            started, i = True, close + 1
        elif c == '"':
            i = _double_quoted(line, i + 1, word, found, depth)
            started = True
        elif c == "`" or line.startswith("$(", i):
            i = _substitution(line, i, word, found, depth)
            started = True
        elif c in _OPERATORS or c in "()":
            end_command()
            i += 1
        elif c.isspace():
            end_word()
            i += 1
        elif c == "#" and not started:  # a comment, to the end of the line
            end = line.find("\n", i)
            i = n if end < 0 else end
        else:
            word.append(c)
            started = True
            i += 1
    end_command()


def _double_quoted(line: str, i: int, word: list[str], found: list[list[str]], depth: int) -> int:
    """Read a double-quoted string from ``i`` (after its quote) into ``word``; its
    ``$(...)`` and backticks still run. Returns the index after the closing quote."""
    n = len(line)
    while i < n and line[i] != '"':
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in '"\\$`\n':
            if line[i + 1] != "\n":
                word.append(line[i + 1])
            i += 2
        elif c == "`" or line.startswith("$(", i):
            i = _substitution(line, i, word, found, depth)
        else:
            word.append(c)
            i += 1
    return i + 1


def _substitution(line: str, i: int, word: list[str], found: list[list[str]], depth: int) -> int:
    """A command substitution at ``i`` (``$(`` or a backtick): its commands are read, its
    text stays in ``word``. Returns the index after it."""
    if line[i] == "`":
        close = line.find("`", i + 1)
        close = len(line) if close < 0 else close
        inside = line[i + 1 : close]
    else:
        close = _closing(line, i + 2)
        inside = line[i + 2 : close]
    _read(inside, found, depth + 1)
    word.append(line[i : close + 1])
    return close + 1


def _closing(line: str, i: int) -> int:
    """The index of the ``)`` that closes a ``$(`` whose inside starts at ``i`` (the end
    of the line if none), skipping quoted text and nested parentheses."""
    depth, n = 1, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            close = line.find("'", i + 1)
            i = n if close < 0 else close + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return n


def _inner(words: list[str], found: list[list[str]], depth: int) -> None:
    """The command line a simple command hands on as one word: ``sh -c LINE`` (and
    ``bash``, ``zsh`` ...), or ``eval WORDS``. (``sudo rm x``, ``env A=1 rm x`` need
    nothing: ``rm x`` are words of the command already.)"""
    first = words[0].rsplit("/", 1)[-1]
    if first == "eval" and len(words) > 1:
        _read(" ".join(words[1:]), found, depth + 1)
    elif first in _SHELLS:
        for at, word in enumerate(words[1:-1], start=1):
            if word.startswith("-") and "c" in word.lstrip("-") and not word.startswith("--"):
                _read(words[at + 1], found, depth + 1)
                break
