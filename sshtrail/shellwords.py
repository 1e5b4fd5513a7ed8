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
            expanded = [each for word in words for each in _braces(word)]
            found.append(expanded)
            _inner(expanded, found, depth)
        words.clear()

    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            if line[i + 1] != "\n":  # backslash-newline joins the lines
                word.append(line[i + 1])
                started = True
            i += 2
        elif (after := _quoted(line, i, word, found, depth)) > i:
            started, i = True, after
        elif c in "<>":  # a redirection: its operator is no part of a word
            end_word()
            i += 1
            while i < n and line[i] in "<>&|":
                i += 1
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


def _quoted(line: str, i: int, word: list[str], found: list[list[str]], depth: int) -> int:
    """Read a quoted string or command substitution at ``i`` into ``word``; the index
    after it, or ``i`` when none starts there."""
    c = line[i]
    if line.startswith("$'", i):  # ANSI-C quoting: $'\x72m' is rm
        return _ansi_c_quoted(line, i + 2, word)
    if line.startswith('$"', i):  # a translated string: its text
        return _double_quoted(line, i + 2, word, found, depth)
    if c == "'":
        close = line.find("'", i + 1)
        close = len(line) if close < 0 else close
        word.append(line[i + 1 : close])
        return close + 1
    if c == '"':
        return _double_quoted(line, i + 1, word, found, depth)
    if c == "`" or line.startswith("$(", i):
        return _substitution(line, i, word, found, depth)
    return i


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


def _ansi_c_quoted(line: str, i: int, word: list[str]) -> int:
    """Read ``$'...'`` from ``i`` (after its quote) into ``word``, its backslash escapes
    decoded as bash does (``\\x72``, ``\\162``, ``\\n``, ``\\'`` ...). Returns the index
    after the closing quote."""
    n, j = len(line), i
    while j < n and line[j] != "'":
        j += 2 if line[j] == "\\" else 1
    raw = line[i : min(j, n)]
    try:
        text = raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        text = raw
    word.append(text)
    return j + 1


def _braces(word: str) -> list[str]:
    """A word's brace expansion, one level (``{rm,x}`` is the words ``rm`` and ``x``;
    ``a{b,c}d`` is ``abd`` and ``acd``); a word without one as it is."""
    start = word.find("{")
    end = word.find("}", start + 1)
    if start < 0 or end < 0 or "," not in word[start:end]:
        return [word]
    head, tail = word[:start], word[end + 1 :]
    return [f"{head}{part}{tail}" for part in word[start + 1 : end].split(",")][:64]


def _closing(line: str, i: int) -> int:
    """The index of the ``)`` that closes a ``$(`` whose inside starts at ``i`` (the end
    of the line if none), skipping quoted text and nested parentheses."""
    depth, n = 1, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "'\"":
            close = line.find(c, i + 1)
            while c == '"' and close > 0 and line[close - 1] == "\\":
                close = line.find(c, close + 1)
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
    for at, word in enumerate(words):  # anywhere: env sh -c, nohup eval, command eval ...
        name = word.rsplit("/", 1)[-1]
        if name == "eval" and at + 1 < len(words):
            _read(" ".join(words[at + 1 :]), found, depth + 1)
            return
        if name in _SHELLS:
            rest = words[at + 1 :]
            for where, option in enumerate(rest):
                if option.startswith("-") and "c" in option.lstrip("-") and option != "--":
                    after = [w for w in rest[where + 1 :] if w != "--"]
                    if after:
                        _read(after[0], found, depth + 1)
                    return


#: Words that run the rest of their simple command: ``env A=1 scp``, ``exec scp``,
#: ``sudo -u root scp``, ``timeout 60 scp``.
_RUNNERS = frozenset(
    {
        "env",
        "exec",
        "command",
        "builtin",
        "sudo",
        "doas",
        "nohup",
        "nice",
        "ionice",
        "timeout",
        "stdbuf",
        "setsid",
        "time",
        "chrt",
        "taskset",
        "busybox",
    }
)


def program_at(words: list[str], name: str) -> int | None:
    """Where the simple command ``words`` runs the program ``name`` (by its name or a
    path: ``scp``, ``/usr/bin/scp``): its first word after assignments (``A=1 scp``), or
    a later one after a word that runs the rest (``env``, ``exec``, ``sudo -u root``,
    ``timeout 60``); None when the command runs another program."""
    at = 0
    while at < len(words) and _is_assignment(words[at]):
        at += 1
    if at == len(words):
        return None
    first = words[at].rsplit("/", 1)[-1]
    if first == name:
        return at
    if first not in _RUNNERS:
        return None
    for later in range(at + 1, len(words)):
        if words[later].rsplit("/", 1)[-1] == name:
            return later
    return None


def _is_assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.isidentifier() and name.isascii()


#: What closes each open quote or substitution.
_CLOSERS = {"'": "'", '"': '"', "`": "`", "$(": ")", "$'": "'"}


def unfinished(line: str) -> bool:
    """Whether the shell reads on after ``line`` before it runs anything: a quote
    (``'``, ``"``, ``$'``, a backtick) or a ``$(`` left open, or a trailing backslash.
    Such a line and the next are one command (``echo 'x`` Enter ``'; rm y`` runs
    ``rm y``); the command policy and the command reader join them."""
    i, n = 0, len(line)
    stack: list[str] = []  # the open quotes and substitutions, innermost last
    while i < n:
        inside = stack[-1] if stack else ""
        c = line[i]
        if inside and c == _CLOSERS[inside]:
            stack.pop()
        elif inside == "'":
            pass  # nothing is special inside single quotes
        elif c == "\\":
            if i + 1 >= n:
                return True  # backslash-newline: the line goes on
            i += 1
        elif inside == "$(" and c == "(":
            stack.append("$(")  # a parenthesis nested in $(...) is closed first
        elif inside != "$'" and (opened := _opening(line, i, inside)):
            stack.append(opened)
            i += len(opened) - 1
        elif not inside and c == "#" and (i == 0 or line[i - 1].isspace()):
            return False  # a comment to the end of the line
        i += 1
    return bool(stack)


def _opening(line: str, i: int, inside: str) -> str:
    """The quote or substitution that opens at ``i`` (``""`` if none), given what it is
    inside: in double quotes only ``$(`` and backticks open anything."""
    for opener in ("$(", "$'", "'", '"', "`"):
        if line.startswith(opener, i) and (inside != '"' or opener in ("$(", "`")):
            return opener
    return ""
