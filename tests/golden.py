"""Whole-statement comparisons against files in tests/golden/ (for SQL no server here runs,
such as MySQL 8's).

A change to emitted SQL makes these tests fail with a diff. If the change is intended,
regenerate the files (every test using them has "golden" in its name) and review them like
code::

    CLEANDB_REGENERATE_GOLDEN=1 python -m pytest -k golden
    git diff tests/golden
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
REGENERATE = "CLEANDB_REGENERATE_GOLDEN"


def render(statements: Iterable[tuple[str, str]]) -> str:
    """``(label, statement)`` pairs as the text of a golden file: each statement whole, under a
    ``-- label`` line, separated by a blank line."""
    return "".join(f"-- {label}\n{sql}\n\n" for label, sql in statements)


def assert_matches_golden(name: str, text: str) -> None:
    """``text`` equals tests/golden/``name``; with CLEANDB_REGENERATE_GOLDEN=1, (re)write it."""
    __tracebackhide__ = True
    path = GOLDEN / name
    if os.environ.get(REGENERATE):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"{path} is missing: create it with {REGENERATE}=1 and review it")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(), text.splitlines(), str(path), "emitted", lineterm=""
        )
        raise AssertionError(
            f"the emitted SQL differs from {path} (intended? see tests/golden.py):\n"
            + "\n".join(diff)
        )
