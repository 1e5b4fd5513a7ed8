"""Every test docs/security.md names as a defence's proof exists.

The threat tables end each row with the tests that prove the defence:
``file.py::test_name``, ``::test_name`` (the file named before it in the same
cell), or a whole ``file.py``. A renamed or removed test would leave a claim
with nothing behind it; this test fails instead.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECURITY = ROOT / "docs" / "security.md"
TESTS = ROOT / "tests"

_REFERENCE = re.compile(r"`([^`]*?(?:\.py(?:::[A-Za-z_][A-Za-z0-9_]*)?|::[A-Za-z_][A-Za-z0-9_]*))`")


def _find(name: str) -> Path | None:
    """A test file by its path under the repository or, as the tables mostly give it,
    by its name alone (it must then be unique)."""
    direct = ROOT / name
    if direct.is_file():
        return direct
    found = [p for p in TESTS.rglob(Path(name).name) if p.is_file()]
    return found[0] if len(found) == 1 else None


def references() -> list[tuple[int, str, str | None]]:
    """(line number, file, test function or None) for every reference in the tables."""
    found: list[tuple[int, str, str | None]] = []
    for number, line in enumerate(SECURITY.read_text().splitlines(), start=1):
        if not line.startswith("|"):
            continue
        for cell in line.split("|"):
            current: str | None = None
            for match in _REFERENCE.finditer(cell):
                text = match.group(1)
                file, _, test = text.partition("::")
                if file:
                    current = file
                if current is None:
                    found.append((number, "", test))  # `::name` with no file before it
                    continue
                found.append((number, current, test or None))
    return found


def test_the_tables_name_tests() -> None:
    assert len(references()) > 40  # the parser finds the references it is meant to check


def test_every_test_the_security_tables_name_exists() -> None:
    missing = []
    for number, file, test in references():
        path = _find(file) if file else None
        if path is None:
            missing.append(f"docs/security.md:{number}: no single test file {file!r}")
            continue
        if test is not None and not re.search(
            rf"^(?:async )?def {re.escape(test)}\(", path.read_text(), re.MULTILINE
        ):
            missing.append(f"docs/security.md:{number}: {path.relative_to(ROOT)} has no {test}")
    assert not missing, "\n".join(missing)
