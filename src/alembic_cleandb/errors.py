"""The one exception hierarchy of alembic-cleandb.

Every message says what went wrong, names the database (never a password) and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CleanDBError",
    "ConfigurationError",
    "NotInstalledError",
    "UnsafeDatabaseError",
    "VersionMismatchError",
    "ResetError",
]


class CleanDBError(Exception):
    """Base class of every error raised by alembic-cleandb."""


class ConfigurationError(CleanDBError):
    """A URL, option or environment setting is malformed or points nowhere."""


class UnsafeDatabaseError(CleanDBError):
    """The database does not look like a test database; nothing was done to it."""


class NotInstalledError(CleanDBError):
    """Tracking is not installed in the database that was asked to reset."""


class VersionMismatchError(CleanDBError):
    """Tracking was installed by a library version with another schema version."""


class ResetError(CleanDBError):
    """The database-side reset failed (lock timeout, dropped table, ...)."""
