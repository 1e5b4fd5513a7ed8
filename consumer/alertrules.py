"""The Sigma rules in force for the alert group: the folder ``alerts.rules``, kept current.

The folder is read at start and again when a file in it is added, removed or changed
(looked at most once a second, when a batch asks). Each file is loaded on its own
(:func:`sshtrail.sigma.load_rules`): a rule that cannot be used is reported with its
reason (``sshtrail alerts rules``, and the log once per change) and the others stay in
force; a broken rule never stops the group. A folder that cannot be read keeps the
rules read before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sshtrail.errors import ConfigError
from sshtrail.sigmarules import RuleSet, load_rules

log = logging.getLogger(__name__)

#: Seconds between looks at the folder.
LOOK_EVERY_S = 1.0
#: Rule files looked at in the folder, at most.
MAX_FILES = 10_000


class RulesInForce:
    """The rules of ``folder`` (None: no rules, no alerts), read again when it changes."""

    def __init__(self, folder: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._folder = folder
        self._clock = clock
        self._lock = threading.Lock()
        self._rules = RuleSet(rules=(), statuses=())
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._looked = -LOOK_EVERY_S
        self.problem: str | None = None
        self.current()

    def current(self) -> RuleSet:
        if self._folder is not None and self._clock() - self._looked >= LOOK_EVERY_S:
            self._look()
        return self._rules

    def _look(self) -> None:
        assert self._folder is not None
        with self._lock:
            self._looked = self._clock()
            try:
                seen = _listing(self._folder)
            except OSError as exc:
                if self.problem is None:
                    log.error(
                        "alert rules: cannot read %s: %s; the rules before stay", self._folder, exc
                    )
                self.problem = f"cannot read {self._folder}: {exc.strerror or exc}"
                return
            if seen == self._seen:
                return
            try:
                rules = load_rules(self._folder)
            except ConfigError as exc:
                self.problem = str(exc)
                log.error("alert rules: %s; the rules before stay", exc)
                return
            self._seen, self._rules, self.problem = seen, rules, None
            refused = [s for s in rules.statuses if s.status != "active"]
            log.info(
                "alert rules: %d active of %d files in %s (%d refused: sshtrail alerts rules)",
                len(rules.rules),
                len(rules.statuses),
                self._folder,
                len(refused),
            )


def _listing(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The rule files of ``folder`` with their modification times and sizes."""
    found = []
    for path in sorted(folder.rglob("*"))[:MAX_FILES]:
        if path.suffix in (".yml", ".yaml") and path.is_file():
            stat = path.stat()
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(found)
