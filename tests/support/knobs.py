"""The test suite's own settings (``SSHTRAIL_TEST_*``), taken out of the environment.

They are read here once and removed from ``os.environ`` before any test
starts a ``sshtrail`` process, so the processes under test get an
environment without them: the production settings loader knows nothing of
the suite (an unknown ``SSHTRAIL_*`` variable is an error there).
"""

from __future__ import annotations

import os
from typing import Final

PREFIX: Final = "SSHTRAIL_TEST_"
_KNOBS: Final = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith(PREFIX)}


def knob(name: str, default: str) -> str:
    """The value of ``SSHTRAIL_TEST_<name>`` as the suite was started with, or ``default``."""
    return _KNOBS.get(PREFIX + name, default)
