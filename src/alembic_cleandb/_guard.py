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


def is_test_database(name: str, allowed: str | None = None) -> bool:
    """True when ``name`` contains ``test`` (any case), is named by ``CLEANDB_ALLOW_DATABASE``,
    or is ``allowed`` (an allowance passed as an argument, e.g. for a worker's copy)."""
    return (
        "test" in name.lower()
        or name == allowed_name()
        or (allowed is not None and name == allowed)
    )


def check_database_name(name: str, action: str, allowed: str | None = None) -> None:
    """Raise :class:`UnsafeDatabaseError` unless ``name`` is a test database (or ``allowed``)."""
    if is_test_database(name, allowed):
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
