"""SigmaHQ's Linux process-creation rules, a corpus written by others, beside the
repository in ``../shared/sigma`` (its README: licence and attribution)."""

from __future__ import annotations

from pathlib import Path

from tests.support.services import unavailable

#: The rule files' folder.
SIGMA = Path(__file__).resolve().parents[2].parent / "shared" / "sigma" / "rules"


def sigma_rules(*names: str) -> Path:
    """The corpus folder, with each rule file ``names`` in it: skipped where it is not
    beside the repository, failed in CI."""
    if not SIGMA.is_dir() or not all((SIGMA / name).is_file() for name in names):
        unavailable(f"SigmaHQ's rules are not beside the repository ({SIGMA})")
    return SIGMA
