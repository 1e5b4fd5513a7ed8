"""Exit statuses, the same for every command (docs/operations.md, "Exit status")."""

from __future__ import annotations

#: An error; for search, verify, lag, completeness: no match, not ok, WARN; for
#: terminate: already ended or no answer.
EXIT_FAILURE = 1
#: What ``search`` exits with when nothing matches (as grep does).
EXIT_NO_MATCH = EXIT_FAILURE
#: What ``terminate``, ``lock`` and ``unlock`` exit with when it was not done: the
#: session had already ended, or no gateway answered.
EXIT_NOT_DONE = EXIT_FAILURE
#: A bad argument, setting or value.
EXIT_USAGE = 2
#: No session, or several, match the id given.
EXIT_NOT_FOUND = 3
#: access-log --verify, verify --cross-check: what to check against could not be read.
EXIT_UNVERIFIED = 4
#: The reader of the output went away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141
