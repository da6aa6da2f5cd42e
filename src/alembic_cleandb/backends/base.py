"""What every dialect module provides, and the registry that picks one by ``dialect.name``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from sqlalchemy.engine import Connection, Dialect

from .._guard import check_database_name
from .._sql import Statement, execute, inline, message
from ..errors import ConfigurationError, UnsafeDatabaseError, VersionMismatchError

#: Version of the database-side objects. Bumped whenever their shape changes; a database whose
#: tracking was installed with another version must be re-installed.
#: 2: marks that never make writers wait (MySQL family), tickets for inserts that rolled back,
#: PostgreSQL sequence baselines in a table and reset fragments that survive a rename.
SCHEMA_VERSION = 4

#: Tables that are never tracked, whatever the configuration says.
ALWAYS_EXCLUDED = ("alembic_version",)


@dataclass(frozen=True)
class TrackingOptions:
    """What ``op.install_clean_tracking()`` was asked to track."""

    #: PostgreSQL schemas to track; empty means the current schema. Ignored elsewhere.
    schemas: tuple[str, ...] = ()
    #: Table names never to track (version tables are always added).
    exclude: tuple[str, ...] = ()
    #: The database name ``CLEANDB_ALLOW_DATABASE`` allowed when the SQL was generated.
    allowed_database: str | None = None

    def excluded(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*ALWAYS_EXCLUDED, *self.exclude)))


@dataclass
class Executor:
    """Runs SQL for an operation: on a live connection, or into Alembic's ``--sql`` output.

    Statements are rendered by :mod:`._sql` for the path that runs them: parameters for the
    driver online, literals in ``--sql`` output.
    """

    dialect: Dialect
    run: Callable[[str], None]
    #: ``None`` in offline (``--sql``) mode.
    connection: Connection | None = None
    #: Statements already run (as rendered for the ``--sql`` output), for tests and debugging.
    log: list[str] = field(default_factory=list)

    def __call__(self, statement: Statement) -> None:
        self.log.append(inline(statement, self.dialect))
        if self.connection is not None:
            execute(self.connection, statement)
        else:
            self.run(inline(statement, self.dialect))

    @property
    def offline(self) -> bool:
        return self.connection is None

    @classmethod
    def for_connection(cls, connection: Connection) -> Executor:
        def run(sql: str) -> None:  # (not used online: __call__ executes the statement)
            execute(connection, sql)

        return cls(connection.dialect, run, connection)


def query_start(query: str, length: int = 80) -> str:
    """The start of a query, on one line (for messages naming another session's query)."""
    text = " ".join(query.split())
    return text if len(text) <= length else text[: length - 3] + "..."


#: What a failed reset's error means, for :meth:`BackendBase.explain`.
LOCK_TIMEOUT, MISSING_TABLE, UNIQUE_CLASH = "lock timeout", "missing table", "unique clash"


class BackendBase:
    """Defaults shared by every backend."""

    def error_kind(self, exc: BaseException) -> str | None:
        """What a driver error means (one of the kinds above), from its SQLSTATE (PostgreSQL)
        or server error number (MySQL family); ``None``: nothing special."""
        return None

    def explain(
        self, exc: BaseException, display: str, connection: Connection | None = None
    ) -> str:
        """One message for a failed reset: what happened and how to fix it.

        With the reset's ``connection`` (still usable after most failures), a lock timeout
        also names the table and the sessions that hold locks on it.
        """
        reason = message(exc)
        kind = self.error_kind(exc)
        if kind == LOCK_TIMEOUT:
            details = ""
            if connection is not None:
                try:
                    details = self.lock_details(exc, connection)
                except Exception:  # the connection may be gone: the message stays useful
                    details = ""
            hint = (
                "another session holds a lock on a table the reset must write (a test left a "
                "transaction open?). Commit or roll back in the test, or close its connections; "
                "raise cleandb_lock_timeout (--cleandb-lock-timeout) if the wait is legitimate"
            )
            if details:
                hint = f"{details[0].upper()}{details[1:]}. {hint[0].upper()}{hint[1:]}"
        elif kind == MISSING_TABLE:
            hint = (
                "a tracked table was dropped or renamed outside migrations; every other table "
                "was reset or keeps its dirty marks. Fix: rename it back; or run "
                "alembic_cleandb.sync(url), which forgets dropped tables and tracks renamed ones "
                "under their new name (their current rows become their baseline); or recreate "
                "the test database and run the migrations again"
            )
        elif kind == UNIQUE_CLASH:
            hint = (
                "a test left unique values swapped between baseline rows (row A took B's value "
                "and B took A's), which a reset that restores rows in place cannot undo. "
                "Nothing was changed and the marks are kept: put the rows back by hand (or "
                "recreate the test database) and reset again"
            )
        else:
            hint = "the database keeps its dirty marks, so the next reset tries again"
        return f"alembic-cleandb: resetting {display} failed: {reason}. {hint}."

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        """After a lock timeout: which table, which sessions hold locks on it ('' if unknown)."""
        return ""

    def installed_database(self, connection: Connection) -> str | None:
        """The database tracking was installed in (``None``: not checked on this backend)."""
        return None

    def own_table(self, name: str) -> bool:
        return False

    # Optional, for ``--cleandb-report`` only (never on the per-test hot path). Names are
    # display names: ``table``, or ``schema.table`` outside the current schema.
    def dirty_tables(self, connection: Connection) -> list[str]:
        """The tracked tables marked dirty now."""
        return []

    def tracked_tables(self, connection: Connection) -> list[str]:
        """Every table tracking is attached to."""
        return []


def require_schema_version(version: int, display: str) -> None:
    """Raise :class:`VersionMismatchError` unless tracking has this library's schema version."""
    if version != SCHEMA_VERSION:
        raise VersionMismatchError(
            f"alembic-cleandb: tracking in {display} has schema version {version}, but this "
            f"library uses version {SCHEMA_VERSION}. Re-install it: "
            "`alembic -n cleandb downgrade cleandb@base` then "
            "`alembic -n cleandb upgrade cleandb@head` (or recreate the test database)."
        )


class _SyncTarget(Protocol):
    def current_database(self, connection: Connection) -> str: ...

    def installed_database(self, connection: Connection) -> str | None: ...


def check_sync_target(backend: _SyncTarget, connection: Connection, version: int) -> None:
    """Before a migration step re-syncs tracking: the same checks as the reset.

    A test database, tracking of this library's schema version, installed in this very
    database (not in the one a dump or copy came from).
    """
    database = backend.current_database(connection)
    check_database_name(database, "sync tracking in")
    require_schema_version(version, repr(database))
    installed = backend.installed_database(connection)
    if installed is not None and installed != database:
        raise UnsafeDatabaseError(
            f"alembic-cleandb: tracking in database {database!r} was installed in database "
            f"{installed!r} (a copy or a restored dump?); nothing was changed. If this is a "
            "copy made for tests, adopt it first: alembic_cleandb.adopt(url); otherwise "
            "remove tracking: `alembic -n cleandb downgrade cleandb@base`."
        )


class Backend(Protocol):
    """One database family's SQL, all in one module."""

    names: ClassVar[tuple[str, ...]]

    def install(self, ex: Executor, options: TrackingOptions) -> None: ...

    def uninstall(self, ex: Executor) -> None: ...

    def sync(self, ex: Executor, after_migration: bool = True) -> None: ...

    def set_baseline(self, connection: Connection) -> None: ...

    def installed_version(self, connection: Connection) -> int | None: ...

    def current_database(self, connection: Connection) -> str: ...

    def resetter(self, connection: Connection) -> Callable[[], int]: ...

    def own_table(self, name: str) -> bool: ...

    def adopt(self, connection: Connection) -> None: ...

    def configure_session(self, connection: Connection, lock_timeout: float) -> None: ...

    def explain(
        self, exc: BaseException, display: str, connection: Connection | None = None
    ) -> str: ...

    def installed_database(self, connection: Connection) -> str | None: ...

    def dirty_tables(self, connection: Connection) -> list[str]: ...

    def tracked_tables(self, connection: Connection) -> list[str]: ...


_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register(names: Sequence[str], factory: Callable[[], Backend]) -> None:
    for name in names:
        _REGISTRY[name] = factory


def backend_for(dialect_name: str) -> Backend:
    """The backend for a SQLAlchemy dialect name (``postgresql``, ``mysql``, ``mariadb``, ...)."""
    from . import mysql, postgresql, sqlite  # noqa: F401  (modules register themselves)

    try:
        return _REGISTRY[dialect_name]()
    except KeyError:
        supported = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(
            f"alembic-cleandb does not support the {dialect_name!r} dialect; supported: {supported}"
        ) from None
