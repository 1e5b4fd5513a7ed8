"""What a shell session taught its reader about itself: the aliases it defined and the
keys it bound to commands with ``bind -x``.

A terminal's reader sees a command line as the shell drew it; bash then runs it
with the session's aliases expanded, and runs a ``bind -x`` key's command with no
Enter at all. :class:`ShellMemory` keeps what the session said of both, as far as
its screen showed it (aliases from a ``.bashrc`` are never seen), so the reader can
list what ran too. It is bounded: :data:`MAX_BINDINGS` aliases and as many keys.
"""

from __future__ import annotations

import re
from typing import Final

from sshtrail.shellwords import commands

#: ``bind -x``'s argument: a key sequence, quoted or not, a colon, the shell command.
_BINDING: Final = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)+)"|([^\s:"]+))\s*:\s*(.+)$', re.S)
#: Keys bound with ``bind -x`` (and, apart, aliases) a session's reader follows at most.
MAX_BINDINGS: Final = 32
#: An alias's name as bash takes it, and a word that may be one.
_ALIAS_NAME: Final = re.compile(r"[A-Za-z0-9_.:@%+,-][A-Za-z0-9_.:@%+,!-]{0,63}")
_ALIAS_WORD: Final = re.compile(r"[^\s;&|()<>'\"`$\\]+")
#: What a backslash and a letter stand for in a readline key sequence.
_KEY_ESCAPES: Final = {
    "e": "\x1b",
    "a": "\a",
    "b": "\b",
    "d": "\x7f",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


def _key_sequence(text: str) -> bytes:
    """The bytes readline's key sequence ``text`` stands for: ``\\C-t`` (Ctrl-T),
    ``\\M-x`` and ``\\e`` (Escape), the usual backslash escapes, other characters as
    they are; b"" for what it cannot read."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(("\\C-", "\\c-"), i) and i + 3 < len(text):
            keys.append(chr(ord(text[i + 3]) & 0x1F))
            i += 4
        elif text.startswith(("\\M-", "\\m-"), i) and i + 3 < len(text):
            keys.append("\x1b" + text[i + 3])
            i += 4
        elif text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] not in _KEY_ESCAPES:
                return b""
            keys.append(_KEY_ESCAPES[text[i + 1]])
            i += 2
        else:
            keys.append(text[i])
            i += 1
    return "".join(keys).encode()


class ShellMemory:
    """The aliases and ``bind -x`` keys one session defined, learnt from the commands
    it ran (:meth:`learn_aliases`, :meth:`learn_bindings`) in the order it ran them."""

    def __init__(self) -> None:
        #: Keys bound with ``bind -x`` in this session, and the command each runs.
        self.bound: dict[bytes, str] = {}
        #: Aliases the session defined (``alias NAME=VALUE``), as far as it showed them.
        self.aliases: dict[str, str] = {}

    def learn_bindings(self, command: str) -> None:
        """Keys ``bind -x`` binds to a shell command (``bind -x '"\\C-t": CMD'``): typed
        at the prompt later, each runs its command, no Enter needed."""
        if "bind" not in command:
            return
        for words in commands(command):
            if words[:1] != ["bind"] or "-x" not in words:
                continue
            for word in words[words.index("-x") + 1 :]:
                found = _BINDING.match(word)
                if found and len(self.bound) < MAX_BINDINGS:
                    keys = _key_sequence(found.group(1) or found.group(2))
                    if keys:
                        self.bound[keys] = found.group(3).strip()

    def learn_aliases(self, command: str) -> None:
        """``alias NAME=VALUE`` and ``unalias NAME`` (``-a``) typed in the session. Aliases
        made before it (a ``.bashrc``) are not known: a command using one is listed as
        typed only."""
        if "alias" not in command:
            return
        for words in commands(command):
            if words[:1] == ["alias"]:
                for word in words[1:]:
                    name, equals, value = word.partition("=")
                    known = name in self.aliases or len(self.aliases) < MAX_BINDINGS
                    if equals and _ALIAS_NAME.fullmatch(name) and known:
                        self.aliases[name] = value
            elif words[:1] == ["unalias"]:
                if "-a" in words[1:]:
                    self.aliases.clear()
                for word in words[1:]:
                    self.aliases.pop(word, None)

    def expand_aliases(self, line: str) -> str | None:
        """``line`` as the session's aliases make it, the first word of each command
        replaced as bash does (again for the first word of a replacement, each name
        once; and the next word too after a value that ends in a blank); None when no
        alias of the session applies. Quoted text is left as it is."""
        if not self.aliases:
            return None
        out: list[str] = []
        at, start, quote = 0, True, ""
        while at < len(line):
            char = line[at]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char in ";&|(\n":  # (first: the second character of ``&&`` or ``||``)
                start = True
            elif start and not char.isspace():
                word = _ALIAS_WORD.match(line, at)
                if word is not None:
                    replaced, start = self._alias_of(word.group())
                    out.append(replaced)
                    at = word.end()
                    continue
                start = False
            out.append(char)
            at += 1
        expanded = "".join(out)
        return expanded if expanded != line else None

    def _alias_of(self, word: str) -> tuple[str, bool]:
        """A command's first word after alias expansion, and whether the word after it is
        expanded too (the value ended in a blank)."""
        seen: set[str] = set()
        text, then = word, False
        while True:
            head = _ALIAS_WORD.match(text)
            name = head.group() if head else ""
            if name not in self.aliases or name in seen:
                return text, then
            seen.add(name)
            value = self.aliases[name]
            then = value.endswith((" ", "\t"))
            text = value + text[len(name) :]
