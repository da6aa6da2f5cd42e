"""The :class:`Backend` base class every dialect module subclasses, and what they share:
the options of an install, the :class:`Executor` that runs or prints SQL, the schema version
checks and the server connection that creates and drops databases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect

from .._connect import autocommit_connection, create_engine, safe_url
from .._guard import check_database_name
from .._sql import SQL, Composable, Literal, Statement, Value, execute, inline, message
from ..changes import TableChanges
from ..errors import (
    ConfigurationError,
    NotInstalledError,
    UnsafeDatabaseError,
    VersionMismatchError,
)

#: Version of the database-side objects. Bumped whenever their shape changes, together with a
#: new revision in ``versions/`` that calls ``op.upgrade_clean_tracking()`` and says
#: ``schema_version = N``: ``alembic -n cleandb upgrade heads`` then re-installs tracking of an
#: older version (test_upgrade.py checks that the branch's head brings this version).
#: 2: marks that never make writers wait (MySQL family), tickets for inserts that rolled back,
#: PostgreSQL sequence baselines in a table and reset fragments that survive a rename.
#: 5 (cleandb_0003): PostgreSQL mark function SECURITY DEFINER with PUBLIC grants, mark
#: trigger ENABLE ALWAYS, foreign keys to or from untracked tables listed
#: (cleandb.config.crossing), sequences tied to no table tracked, fragments with ONLY and
#: schema-qualified row types.
#: 6 (cleandb_0004): foreign-key checks for untracked tables, the cascade closure, in-place
#: restore statements, binary-collated bookkeeping tables, application triggers per table
#: (MySQL family; SQLite: the checks' and triggers' columns).
#: 7 (cleandb_0005): see that revision's docstring.
SCHEMA_VERSION = 7

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

    Statements are rendered by :mod:`.._sql` for the path that runs them: parameters for the
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


#: What a failed reset's error means, for :meth:`Backend.explain`.
LOCK_TIMEOUT, MISSING_TABLE, UNIQUE_CLASH = "lock timeout", "missing table", "unique clash"


#: Said once, after the sessions, when one of them is idle in a transaction.
IDLE_IN_TRANSACTION = (
    "a session idle in transaction wrote and has neither committed nor rolled back: usually "
    "an ORM session a test flushed without commit (Flask-SQLAlchemy's scoped session keeps it "
    "open until db.session.remove(); call it in a fixture that requests cleandb_reset, so it "
    "runs before the reset - see docs/recipes.md), or end that session as shown"
)


def layers_open_error(depth: int, display: str, action: str) -> ConfigurationError:
    """The refusal of anything that would take a new baseline while scoped baselines
    (layers) are open: what to do to end them."""
    return ConfigurationError(
        f"alembic-cleandb: cannot {action} {display}: {depth} scoped baseline(s) are open "
        "(cleandb_scope / Cleaner.scope(), or a run killed inside one); nothing was changed. End "
        "the scopes first: Cleaner(url).pop_baseline() once per open scope (a pytest run with "
        "the plugin ends those a killed run left open when it starts)."
    )


def require_schema_version(version: int, display: str) -> None:
    """Raise :class:`VersionMismatchError` unless tracking has this library's schema version."""
    if version > SCHEMA_VERSION:
        raise VersionMismatchError(
            f"alembic-cleandb: tracking in {display} has schema version {version}, newer than "
            f"this library's version {SCHEMA_VERSION}: it was installed by a newer "
            "alembic-cleandb. Use that version, or recreate the test database."
        )
    if version != SCHEMA_VERSION:
        raise VersionMismatchError(
            f"alembic-cleandb: tracking in {display} has schema version {version}, but this "
            f"library uses version {SCHEMA_VERSION}. Upgrade it: "
            "`alembic -n cleandb upgrade heads` (the cleandb_migrate option does it too)."
        )


def check_sync_target(backend: Backend, connection: Connection, version: int) -> None:
    """Before a migration step re-syncs tracking: the same checks as the reset.

    A test database, tracking of this library's schema version, installed in this very
    database (not in the one a dump or copy came from).
    """
    database = backend.current_database(connection)
    check_database_name(database, "sync tracking in")
    require_schema_version(version, repr(database))
    check_installed_here(backend, connection, database)


def check_installed_here(backend: Backend, connection: Connection, database: str) -> None:
    """Refuse tracking that was installed in another database (a copy not adopted yet)."""
    installed = backend.installed_database(connection)
    if installed is not None and installed != database:
        raise UnsafeDatabaseError(
            f"alembic-cleandb: tracking in database {database!r} was installed in database "
            f"{installed!r} (a copy or a restored dump?); nothing was changed. If this is a "
            "copy made for tests, adopt it first: alembic_cleandb.adopt(url); otherwise "
            "remove tracking: `alembic -n cleandb downgrade cleandb@base`."
        )


def require_installed(backend: Backend, connection: Connection, display: str) -> int:
    """The schema version of the tracking in ``connection``'s database; raises
    :class:`NotInstalledError` without tracking, :class:`VersionMismatchError` with another
    version's."""
    version = backend.installed_version(connection)
    if version is None:
        raise NotInstalledError(
            f"alembic-cleandb: tracking is not installed in {display}. Install it in test "
            "setup: `alembic -n cleandb upgrade cleandb@head` (or "
            "`command.upgrade(alembic_cleandb.enable(config), 'cleandb@head')`)."
        )
    require_schema_version(version, display)
    return version


@contextmanager
def server_connection(url: URL, databases: tuple[str | None, ...]) -> Iterator[Connection]:
    """An AUTOCOMMIT connection to the first maintenance database that accepts us."""
    errors = []
    for name in databases:
        engine = create_engine(url._replace(database=name))
        try:
            try:
                connection = engine.connect()
            except sa.exc.DBAPIError as exc:
                errors.append(message(exc))
                continue
            with connection:
                yield connection
            return
        finally:
            engine.dispose()
    raise ConfigurationError(
        f"alembic-cleandb: cannot connect to the server of {safe_url(url)!r} to create or drop "
        f"test databases: {errors[-1] if errors else 'no maintenance database'}. Check that the "
        "server runs and the URL's user may connect."
    )


def create_failed(url: URL, exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"alembic-cleandb: cannot create the test database {safe_url(url)!r}: {message(exc)}. "
        "The URL's user needs the right to create databases (PostgreSQL: CREATEDB; MySQL: "
        "CREATE), or create the database yourself."
    )


@dataclass(frozen=True)
class ChangeSource:
    """One dirty table, as a backend compares it with its baseline.

    ``differences`` selects, for every distinct row whose count now differs from its count in
    the baseline, the row's values as ``c0``, ``c1``, ... (in the order of ``columns``) and
    ``cleandb_n``: rows now minus rows in the baseline. ``order`` names the columns of that
    result that order the rows of a table without a primary key (with one: the key's)."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    differences: Composable
    order: tuple[str, ...] = ()

    def alias(self, column: str) -> str:
        return f"c{self.columns.index(column)}"


def difference_query(source: ChangeSource, limit: int) -> Statement:
    """The rows of :meth:`TableChanges.from_rows` for one table: which kind each difference
    is (a key with two rows, the baseline's and the current one, is a changed row), at most
    ``limit`` rows (keys, for changed rows) of each kind, and each kind's total."""
    values = ", ".join(f"c{i}" for i in range(len(source.columns)))
    keys = ", ".join(source.alias(k) for k in source.key)
    order = keys or ", ".join(source.order or [f"c{i}" for i in range(len(source.columns))])
    kind = (
        f"CASE WHEN count(*) OVER (PARTITION BY {keys}) > 1 THEN 0 "
        "WHEN cleandb_n > 0 THEN 1 ELSE 2 END"
        if keys
        else "CASE WHEN cleandb_n > 0 THEN 1 ELSE 2 END"
    )
    return SQL(
        "WITH cleandb_d AS ({}), "
        f"cleandb_k AS (SELECT cleandb_d.*, {kind} AS cleandb_kind FROM cleandb_d), "
        "cleandb_r AS (SELECT cleandb_k.*, "
        f"dense_rank() OVER (PARTITION BY cleandb_kind ORDER BY {order}) AS cleandb_rank, "
        "sum(abs(cleandb_n)) OVER (PARTITION BY cleandb_kind) AS cleandb_total FROM cleandb_k) "
        f"SELECT {values}, cleandb_n, cleandb_kind, cleandb_total FROM cleandb_r "
        "WHERE cleandb_rank <= {} "
        f"ORDER BY cleandb_kind, {order}, cleandb_n"
    ).format(source.differences, Literal(int(limit)))


class Backend(ABC):
    """One database family: the tracking it installs, its reset, and the server-level SQL that
    creates, copies and drops whole test databases (for ``cleandb_migrate`` and the
    pytest-xdist worker copies). One subclass per dialect module, picked by
    :func:`alembic_cleandb.backends.backend_for`."""

    #: The SQLAlchemy dialect names this backend serves.
    names: ClassVar[tuple[str, ...]] = ()

    # -- tracking ---------------------------------------------------------------------
    @abstractmethod
    def install(self, ex: Executor, options: TrackingOptions) -> None:
        """Create the tracking objects and attach tracking to every table (idempotent)."""

    @abstractmethod
    def uninstall(self, ex: Executor) -> None:
        """Remove every object tracking created, and nothing else."""

    @abstractmethod
    def sync(self, ex: Executor, after_migration: bool = True) -> None:
        """Attach tracking to new tables, forget dropped ones (after a migration step, the
        tables it wrote to take a new baseline)."""

    @abstractmethod
    def set_baseline(self, connection: Connection) -> None:
        """Declare the current rows and counters of every tracked table its baseline (and
        clear the "sync pending" mark)."""

    @abstractmethod
    def mark_sync_pending(self, ex: Executor) -> bool:
        """Online, where tracking is installed: mark the database "sync pending" until a sync
        after a migration (or :meth:`set_baseline`) clears it; False where nothing was marked."""

    @abstractmethod
    def sync_pending(self, connection: Connection) -> bool:
        """Whether a migration run stopped before the sync of its last step."""

    @abstractmethod
    def installed_version(self, connection: Connection) -> int | None:
        """The schema version of the installed tracking; ``None`` without tracking."""

    @abstractmethod
    def current_database(self, connection: Connection) -> str:
        """The name the test-database guard checks."""

    @abstractmethod
    def resetter(self, connection: Connection, restart_ids: bool = True) -> Callable[[], int]:
        """The per-test call: resets the dirty tables, returns how many.

        ``restart_ids``: counters (sequences, AUTO_INCREMENT, ``sqlite_sequence``) go back to
        their baselines too. False: rows only; counters keep counting - never moved, so never
        backwards, and a later reset with ``restart_ids`` restores every counter that moved
        meanwhile (tracking remembers that it must look)."""

    @abstractmethod
    def adopt(self, connection: Connection) -> None:
        """Let a copy of a tracked database be reset (tracking records its database)."""

    @abstractmethod
    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        """Session settings of the connection that resets (lock wait, trigger switches)."""

    # -- scoped baselines (layers) ----------------------------------------------------
    # A class-, module- or session-scoped fixture declares "what I wrote is the baseline of my
    # scope": push_baseline() after its writes, pop_baseline() when its scope ends. Layers
    # nest; both cost in proportion to the tables the layer's writes touched, never to the
    # number of tracked tables. The default refuses (a backend that has no layers yet).
    #
    # While layers are open, everything that would take a new baseline of its own refuses,
    # changing nothing, with :func:`layers_open_error`'s message: set_baseline(), the sync
    # after a migration step (so a migration run fails, and is rolled back where the backend
    # can), an upgrade of tracking and a re-install. The layers are never dropped silently:
    # their saved baselines are the only copy of the rows the scopes replaced. The pytest
    # plugin ends every layer a killed run left open before it migrates or resets (and says
    # so in the header); outside pytest, Cleaner.baseline_depth() tells, and pop_baseline()
    # ends them.
    def push_baseline(self, connection: Connection) -> int:
        """Start a layer: every tracked table marked dirty now takes its current rows and
        counters as its baseline; the baseline it had is kept in the new layer; its marks are
        cleared. Tables not marked keep their baseline. Returns the new depth (1 for the first
        layer)."""
        raise ConfigurationError(
            f"alembic-cleandb: scoped baselines are not available on {self.names[0]}"
        )

    def pop_baseline(self, connection: Connection) -> int:
        """End the innermost layer: every table it changed gets its previous baseline back,
        rows and counters, and is reset to it; every other table marked dirty is reset to its
        baseline as by the reset; marks cleared. Refuses (:class:`ConfigurationError`) when no
        layer is open. Returns the depth after."""
        raise ConfigurationError(
            f"alembic-cleandb: scoped baselines are not available on {self.names[0]}"
        )

    def baseline_depth(self, connection: Connection) -> int:
        """How many layers are open (0: the baseline is the migrations' or set_baseline()'s)."""
        return 0

    # -- upgrades ---------------------------------------------------------------------
    @abstractmethod
    def installed_options(self, connection: Connection) -> TrackingOptions:
        """What the installed tracking (of any version) was asked to track."""

    @abstractmethod
    def has_marks(self, connection: Connection) -> bool:
        """Whether the installed tracking (of any version) has tables marked dirty."""

    def upgrade(self, ex: Executor, after_migration: bool = False) -> None:
        """Bring tracking installed by an older version of the library to this version.

        Removes every object of the old tracking (:meth:`uninstall` reads them from the
        catalog) and installs this version's with the same options; the current rows become
        the baseline. A no-op without tracking or with this version's. Refuses, changing
        nothing, while tables are marked dirty (their rows are not a baseline) - unless a
        migration step just wrote them (``after_migration``), whose rows are the baseline.
        """
        connection = ex.connection
        if connection is None:
            self.upgrade_offline(ex)
            return
        version = self.installed_version(connection)
        if version is None or version == SCHEMA_VERSION:
            return
        database = self.current_database(connection)
        check_database_name(database, "upgrade tracking in")
        if version > SCHEMA_VERSION:
            require_schema_version(version, repr(database))
        check_installed_here(self, connection, database)
        if not after_migration and self.has_marks(connection):
            raise VersionMismatchError(
                f"alembic-cleandb: tracking in {database!r} has schema version {version} and "
                "tables marked dirty, so their rows are not the baseline an upgrade would take; "
                "nothing was changed. Reset them with the alembic-cleandb version that "
                "installed tracking, or recreate the test database, then upgrade again."
            )
        options = self.installed_options(connection)
        self.uninstall(ex)
        self.install(ex, options)

    def upgrade_offline(self, ex: Executor) -> None:
        """``--sql`` mode: the upgrade must read the installed version, so it needs a server."""
        raise ConfigurationError(
            f"alembic-cleandb cannot upgrade tracking in offline (--sql) mode on {self.names[0]}: "
            "it reads the installed version and options from the database. Run "
            "`alembic -n cleandb upgrade heads` against the test database instead."
        )

    def error_kind(self, exc: BaseException) -> str | None:
        """What a driver error means (one of the kinds above), from its SQLSTATE (PostgreSQL)
        or server error number (MySQL family); ``None``: nothing special."""
        return None

    #: Substrings of messages meaning "a row of an untracked table references a row the reset
    #: would remove" (MySQL family, SQLite: the reset's own check, whose message is ours).
    dangling_markers: ClassVar[tuple[str, ...]] = ("references a row a test wrote to",)

    def explain(
        self,
        exc: BaseException,
        display: str,
        connection: Connection | None = None,
        action: str = "resetting",
    ) -> str:
        """One message for a failed reset: what happened and how to fix it.

        With the reset's ``connection`` (still usable after most failures), a lock timeout
        also names the table and the sessions that hold locks on it. ``action`` names what
        failed (the start or end of a scoped baseline is a reset too).
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
        elif any(m in reason for m in self.dangling_markers):
            hint = (
                "resetting it would leave a dangling reference, so nothing was reset and the "
                "marks are kept. Delete or update that row in the test (the next reset then "
                "succeeds), or track that table too (remove it from "
                "op.install_clean_tracking(exclude=[...]))"
            )
        else:
            hint = "the database keeps its dirty marks, so the next reset tries again"
        return f"alembic-cleandb: {action} {display} failed: {reason}. {hint}."

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        """After a lock timeout: which table, which sessions hold locks on it ('' if unknown)."""
        return ""

    def installed_database(self, connection: Connection) -> str | None:
        """The database tracking was installed in (``None``: not checked on this backend)."""
        return None

    def own_table(self, name: str) -> bool:
        return False

    # -- diagnostics -------------------------------------------------------------------
    # Optional, for ``--cleandb-report`` only (never on the per-test hot path). Names are
    # display names: ``table``, or ``schema.table`` outside the current schema.
    def dirty_tables(self, connection: Connection) -> list[str]:
        """The tracked tables marked dirty now."""
        return []

    def tracked_tables(self, connection: Connection) -> list[str]:
        """Every table tracking is attached to."""
        return []

    # -- what a test wrote (cleandb_show_changes) --------------------------------------
    # Read-only, off the hot path: only for a failed test (or every test with
    # ``cleandb_show_changes = all``), before its reset. The marks are read, not consumed.
    def change_sources(self, connection: Connection) -> list[ChangeSource]:
        """One :class:`ChangeSource` per tracked table marked dirty now (and, where writes
        to it may change others without marking them, those too)."""
        return []

    def changes(self, connection: Connection, limit: int) -> list[TableChanges]:
        """How each table marked dirty differs from its baseline, at most ``limit`` rows of
        each kind per table (the totals count them all)."""
        found = []
        for source in self.change_sources(connection):
            rows = execute(connection, difference_query(source, limit)).fetchall()
            found.append(TableChanges.from_rows(source.table, source.columns, source.key, rows))
        return found

    # -- whole test databases ---------------------------------------------------------
    #: Maintenance databases to connect to for CREATE/DROP DATABASE (``None``: the server's
    #: default).
    maintenance: ClassVar[tuple[str | None, ...]] = (None,)
    #: Finds a database by name (``{}``: its name, as a value).
    exists_sql: ClassVar[SQL] = SQL("")
    #: Creates an empty database (``{}``: its name, as a name).
    create_sql: ClassVar[SQL] = SQL("")
    #: Rows (schema or NULL, table) of every table with a ``version_num`` column: Alembic's
    #: version table, whatever ``version_table``/``version_table_schema`` named it.
    version_tables_sql: ClassVar[str] = ""

    def database(self, url: URL) -> str:
        if not url.database:
            raise ConfigurationError(
                f"alembic-cleandb: {safe_url(url)!r} names no database; put the test "
                "database's name in the URL"
            )
        return url.database

    def guard_name(self, url: URL) -> str:
        """The name the test-database guard checks (what ``current_database`` returns)."""
        return self.database(url)

    def copy_url(self, base: URL, suffix: str) -> URL:
        return base.set(database=f"{self.database(base)}_{suffix}")

    def _server(self, url: URL) -> AbstractContextManager[Connection]:
        return server_connection(url, self.maintenance)

    def exists(self, url: URL) -> bool:
        with self._server(url) as c:
            found = execute(c, self.exists_sql.format(Value(self.database(url)))).scalar()
        return found is not None

    def create_empty(self, url: URL) -> None:
        name = self.database(url)
        check_database_name(name, "create")
        with self._server(url) as c:
            try:
                execute(c, self.create_sql.format(name))
            except sa.exc.DBAPIError as exc:
                raise create_failed(url, exc) from None

    @abstractmethod
    def copy(self, base: URL, copy: URL, allowed: str | None = None) -> None:
        """Create ``copy`` (which does not exist) as a tracked copy of ``base``.

        ``allowed``: the copy's name when the guard must accept it although it lacks ``test``
        (its base was allowed explicitly); an argument, never the process environment."""

    @abstractmethod
    def drop(self, url: URL) -> None:
        """Drop the database if it exists."""

    def adopt_copy(self, url: URL, allowed: str | None = None) -> None:
        """After a copy: the same checks as :func:`alembic_cleandb.adopt` (``allowed``: see
        :meth:`copy`), then :meth:`adopt` in the copy."""
        with autocommit_connection(url) as connection:
            check_database_name(self.current_database(connection), "adopt", allowed)
            require_installed(self, connection, safe_url(url))
            self.adopt(connection)
