"""The gateway's command policy: the rules of ``policy.file``, kept current, and failing closed.

The file is read at start and read again when its modification time or size changes,
looked at most once a second, when a command is checked: no thread, and a check costs a
``stat`` at most. A file that cannot be used is logged (ERROR, once per change) and the
rules before it stay; when there were none (a bad file at start), every session is
refused with the reason until the file is mended: policy that cannot be evaluated must
not let commands run unchecked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from producer.policy import Refused
from sshtrail.commandpolicy import Decision, Policy, load_policy
from sshtrail.policyfile import PolicyError

log = logging.getLogger(__name__)

#: Seconds between looks at the file.
LOOK_EVERY_S = 1.0


class CommandCheck:
    """Decides commands by the current rules; ``path`` None: no policy (all accepted)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: Policy | None = Policy() if path is None else None
        self._seen: tuple[int, int] | None = None
        self._looked = -LOOK_EVERY_S
        #: Why the file could not be used, while it cannot (None: it is in force).
        self.problem: str | None = None
        if path is not None:
            self._look()

    @property
    def policy(self) -> Policy | None:
        """The rules in force; None while none could be read (every session refused)."""
        self._maybe_look()
        return self._policy

    def refusal(self) -> str | None:
        """Why sessions are refused outright: no rules could ever be read."""
        self._maybe_look()
        if self._policy is None:
            return f"the command policy cannot be read: {self.problem}"
        return None

    def decide(self, operator: str, target: str, line: str) -> Decision | None:
        """The current rules' decision on ``line``; None when there are no rules to
        decide by (the caller refuses)."""
        policy = self.policy
        return None if policy is None else policy.decide(operator, target, line)

    def _maybe_look(self) -> None:
        if self._path is not None and self._clock() - self._looked >= LOOK_EVERY_S:
            self._look()

    def _look(self) -> None:
        assert self._path is not None
        with self._lock:
            self._looked = self._clock()
            try:
                stat = self._path.stat()
                seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                seen = None
            if seen == self._seen and (seen is not None or self.problem is not None):
                return
            self._seen = seen
            try:
                policy = load_policy(self._path)
            except PolicyError as exc:
                self.problem = str(exc)
                kept = "the rules before it stay" if self._policy else "sessions are refused"
                log.error("command policy: %s; %s", exc, kept)
                return
            self._policy, self.problem = policy, None
            checked = sum(rule.action != "accept" for rule in policy.rules)
            log.info(
                "command policy: %d rules from %s (%d reject or warn), %d moderation tables",
                len(policy.rules),
                self._path,
                checked,
                len(policy.moderations),
            )


def request_outcome(decision: Decision | None) -> Refused | str | None:
    """What a decision on an exec request or a subsystem does: a refusal (exit status
    126, as a shell answers a command it may not run; recorded as refused), a warning
    to show first, or nothing. No rules readable (None) refuses."""
    if decision is None:
        return Refused("the gateway's command policy cannot be read", "policy unreadable")
    if decision.rule is None or decision.action == "accept":
        return None
    if decision.action == "reject":
        return Refused(
            decision.message,
            "command rejected",
            f" by rule {decision.rule.name}: {decision.message}",
            exit_status=126,
        )
    return f"warning (rule {decision.rule.name}): {decision.message}"
