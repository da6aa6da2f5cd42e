"""What every dialect module provides, and the registry that picks one by ``dialect.name``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from sqlalchemy.engine import Connection, Dialect

from ._guard import check_database_name
from .errors import ConfigurationError, UnsafeDatabaseError, VersionMismatchError

#: Version of the database-side objects. Bumped whenever their shape changes; a database whose
#: tracking was installed with another version must be re-installed.
#: 2: marks that never make writers wait (MySQL family), tickets for inserts that rolled back,
#: PostgreSQL sequence baselines in a table and reset fragments that survive a rename.
#: 5: foreign-key checks for untracked tables, cascade closure (MySQL family).
SCHEMA_VERSION = 5

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
    """Runs SQL for an operation: on a live connection, or into Alembic's ``--sql`` output."""

    dialect: Dialect
    run: Callable[[str], None]
    #: ``None`` in offline (``--sql``) mode.
    connection: Connection | None = None
    #: Statements already run, for tests and debugging.
    log: list[str] = field(default_factory=list)

    def __call__(self, sql: str) -> None:
        self.log.append(sql)
        self.run(sql)

    @property
    def offline(self) -> bool:
        return self.connection is None

    @classmethod
    def for_connection(cls, connection: Connection) -> Executor:
        def run(sql: str) -> None:
            # The driver's own cursor, without parameters: no driver parses ``%`` then.
            cursor = connection.connection.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()

        return cls(connection.dialect, run, connection)


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's wrapping."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


class BackendBase:
    """Defaults shared by every backend."""

    #: Substrings of driver messages meaning "a tracked table is gone or was renamed".
    missing_table_markers: ClassVar[tuple[str, ...]] = ()
    #: Substrings of driver messages meaning "a lock wait timed out".
    lock_timeout_markers: ClassVar[tuple[str, ...]] = ()
    #: Substrings of driver messages meaning "a unique value is still taken by another row".
    unique_markers: ClassVar[tuple[str, ...]] = ()
    #: Substrings of messages meaning "a row of an untracked table references a row the reset
    #: would remove" (MySQL family, SQLite: the reset's own check).
    dangling_markers: ClassVar[tuple[str, ...]] = ("references a row a test wrote to",)

    def explain(
        self, exc: BaseException, display: str, connection: Connection | None = None
    ) -> str:
        """One message for a failed reset: what happened and how to fix it.

        With the reset's ``connection`` (still usable after most failures), a lock timeout
        also names the table and the sessions that hold locks on it.
        """
        reason = first_line(exc)
        if any(m in reason for m in self.lock_timeout_markers):
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
        elif any(m in reason for m in self.missing_table_markers):
            hint = (
                "a tracked table was dropped or renamed outside migrations; every other table "
                "was reset or keeps its dirty marks. Fix: rename it back; or run "
                "alembic_cleandb.sync(url), which forgets dropped tables and tracks renamed ones "
                "under their new name (their current rows become their baseline); or recreate "
                "the test database and run the migrations again"
            )
        elif any(m in reason for m in self.unique_markers):
            hint = (
                "a test left unique values swapped between baseline rows (row A took B's value "
                "and B took A's), which a reset that restores rows in place cannot undo. "
                "Nothing was changed and the marks are kept: put the rows back by hand (or "
                "recreate the test database) and reset again"
            )
        elif any(m in reason for m in self.dangling_markers):
            hint = (
                "resetting it would leave a dangling reference, so nothing was reset and the "
                "marks are kept. Delete or update that row in the test (the next reset then "
                "succeeds), or track that table too (remove it from "
                "op.install_clean_tracking(exclude=[...]))"
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


def call_routine(connection: Connection, statement: str) -> Callable[[], int]:
    """A reset that calls the database-side routine on the raw driver connection.

    ``connection`` must be in AUTOCOMMIT mode; the driver cursor skips SQLAlchemy's per-call
    overhead, which matters when the reset runs after every test.
    """
    dbapi = connection.connection.driver_connection
    assert dbapi is not None

    def reset() -> int:
        cursor = dbapi.cursor()
        try:
            cursor.execute(statement)
            row = cursor.fetchone()
            while cursor.nextset():  # CALL on MySQL returns a trailing status result
                pass
        finally:
            cursor.close()
        return int(row[0]) if row and row[0] is not None else 0

    return reset


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
