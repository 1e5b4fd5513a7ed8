"""Deciding whether a missing service skips a test (developer) or fails it (CI)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> NoReturn:
    """Skip with a reason on a developer's machine; fail in CI, where all must run."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: every service must be available)", pytrace=False)
    pytest.skip(what)
