"""The guard that keeps tracking and resets away from databases that are not for tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import UnsafeDatabaseError

ALLOW_ENV = "CLEANDB_ALLOW_DATABASE"


def allowed_name() -> str | None:
    """The exact database name ``CLEANDB_ALLOW_DATABASE`` allows, if set."""
    value = os.environ.get(ALLOW_ENV, "").strip()
    return value or None


def is_test_database(name: str) -> bool:
    """True when ``name`` contains ``test`` (any case) or is named by ``CLEANDB_ALLOW_DATABASE``."""
    return "test" in name.lower() or name == allowed_name()


def check_database_name(name: str, action: str) -> None:
    """Raise :class:`UnsafeDatabaseError` unless ``name`` is a test database."""
    if is_test_database(name):
        return
    raise UnsafeDatabaseError(
        f"alembic-cleandb refuses to {action} database {name!r}: its name does not contain "
        f"'test'. Nothing was changed. Point the URL at a test database, or, if this really is "
        f"a throw-away database, allow it explicitly with {ALLOW_ENV}={name}"
    )


@contextmanager
def temporary_env(name: str | None, value: str | None) -> Iterator[None]:
    """Set environment variable ``name`` to ``value`` for a while (no-op when either is None)."""
    if not name or value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
