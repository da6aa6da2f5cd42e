"""Run-time API: reset, re-baseline and adopt tracked test databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ._connect import Target, autocommit_connection, connect, create_engine, safe_url
from ._guard import check_database_name
from .backends import Backend, backend_for
from .backends.base import Executor, require_installed
from .changes import DEFAULT_LIMIT, TableChanges
from .errors import CleanDBError, ConfigurationError, ResetError

__all__ = ["Cleaner", "Scope", "clean", "set_baseline", "sync", "adopt", "DatabaseInfo"]

DEFAULT_LOCK_TIMEOUT = 5.0


@dataclass(frozen=True)
class DatabaseInfo:
    """What the pytest header and error messages say about a tracked database."""

    url: str  # password hidden
    backend: str
    database: str
    schema_version: int


def _check_synced(backend: Backend, connection: Connection, display: str) -> None:
    if backend.sync_pending(connection):
        raise ConfigurationError(
            f"alembic-cleandb: a migration run on {display} stopped before its last step, so "
            "tracking does not know what the steps it did changed (tables they created are "
            "untracked, tables they wrote keep their old baseline). Nothing was reset. Fix: "
            "finish the migration (`alembic -n cleandb upgrade heads`: a run's last step syncs "
            "tracking), or take the database as it is now as its baseline: "
            "alembic_cleandb.set_baseline(url)."
        )


class Cleaner:
    """One open connection to a tracked test database; :meth:`reset` is the per-test call.

    Opening it checks that the database is a test database (name contains ``test``, equals
    ``CLEANDB_ALLOW_DATABASE`` or ``allowed_database``) and that tracking of this library's
    schema version is there.

    ``restart_ids=True`` (the default): each reset also puts the counters of the tables it
    resets (sequences, AUTO_INCREMENT, ``sqlite_sequence``) back to their baselines, so a
    test's first insert gets the id the seed's next row would. ``False``: rows only, with
    DELETE and INSERT; counters keep counting (never moved backwards, so an id is never
    handed out twice), which spares MySQL/MariaDB a DDL per table. A later reset with
    ``restart_ids=True`` restores every counter that moved meanwhile.
    """

    def __init__(
        self,
        url: str | sa.URL,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        *,
        allowed_database: str | None = None,
        restart_ids: bool = True,
    ):
        self._engine: Engine = create_engine(url)
        self.display = safe_url(self._engine.url)
        self._connection = connect(self._engine)
        try:
            self.backend = backend_for(self._connection.dialect.name)
            database = self.backend.current_database(self._connection)
            check_database_name(database, "reset", allowed_database)
            version = require_installed(self.backend, self._connection, self.display)
            _check_synced(self.backend, self._connection, self.display)
            self.info = DatabaseInfo(self.display, self._connection.dialect.name, database, version)
            self.backend.configure_session(self._connection, lock_timeout)
            self._reset: Callable[[], int] = self.backend.resetter(
                self._connection, restart_ids
            )
        except BaseException:
            self.close()
            raise

    #: True after a reset failed, until one succeeds: the database may not be at its baseline.
    pending = False

    def reset(self) -> int:
        """Reset every table written since the last reset; returns how many were reset.

        Never waits longer than ``lock_timeout`` for another session's lock; a failure raises
        :class:`ResetError` naming the table and the sessions holding locks on it, keeps the
        dirty marks of what was not reset, and sets :attr:`pending` until a reset succeeds.
        """
        try:
            count = self._reset()
        except Exception as exc:
            self.pending = True
            raise ResetError(self.backend.explain(exc, self.display, self._connection)) from exc
        self.pending = False
        return count

    def changes(self, limit: int = DEFAULT_LIMIT) -> list[TableChanges]:
        """How each table written since the last reset differs from its baseline: rows added,
        removed and changed (by primary key; a table without one is compared as a multiset),
        at most ``limit`` of each kind per table. Read-only: the marks stay for the reset.

        Waits at most ``lock_timeout`` for a lock; a failure raises the driver's error."""
        return self.backend.changes(self._connection, limit)

    def _layer(self, action: str, call: Callable[[Connection], int]) -> int:
        try:
            depth = call(self._connection)
        except CleanDBError:
            raise
        except Exception as exc:
            self.pending = True
            raise ResetError(
                self.backend.explain(exc, self.display, self._connection, action)
            ) from exc
        self.pending = False
        return depth

    def push_baseline(self) -> int:
        """Start a scoped baseline: every table written since the last reset takes its
        current rows and counters (sequences, AUTO_INCREMENT) as its baseline until
        :meth:`pop_baseline`; the baseline it had is kept. Returns the number of scopes now
        open. Costs in proportion to the tables written, not to the tables tracked.

        :meth:`scope` wraps this and :meth:`pop_baseline` in a with-block."""
        return self._layer("starting a scoped baseline in", self.backend.push_baseline)

    def pop_baseline(self) -> int:
        """End the innermost scoped baseline: the tables it seeded get their previous
        baseline back (rows and counters) and every table written since is reset. Raises
        :class:`ConfigurationError` when no scope is open; a failure (a lock timeout, say)
        raises :class:`ResetError`, like :meth:`reset`. Returns the number of scopes still
        open."""
        return self._layer("ending a scoped baseline in", self.backend.pop_baseline)

    def baseline_depth(self) -> int:
        """How many scoped baselines are open (0: the migrations' or set_baseline()'s)."""
        return self.backend.baseline_depth(self._connection)

    def scope(self) -> Scope:
        """A scoped baseline of seed data, for use outside pytest (in pytest, the
        ``cleandb_scope`` fixture does this for a fixture's scope)::

            scope = cleaner.scope()
            with scope:
                load_catalog()  # through any connection: becomes the baseline
            ...                 # every cleaner.reset() restores the catalog
            scope.end()         # the catalog is gone, the previous baseline is back
        """
        return Scope(self)

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception:  # a connection killed under us: nothing left to close or report
            pass
        finally:
            self._engine.dispose()

    def __enter__(self) -> Cleaner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def add_note(exc: BaseException | None, note: str) -> None:
    """Add a note to an exception that propagates (Python 3.11+; earlier: nothing)."""
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)


class Scope:
    """Seed data that is the baseline from the end of its with-block until :meth:`end`.

    Entering resets what was written and not reset yet (only the block's own writes become
    the scope's baseline). A block that raises is reset too, and no scope starts. After the
    block, :meth:`Cleaner.reset` restores the block's rows (and sequence positions) instead
    of the previous baseline; :meth:`end` brings the previous baseline back. Scopes nest;
    the innermost ends first. Made by :meth:`Cleaner.scope`.
    """

    def __init__(self, cleaner: Cleaner):
        self.cleaner = cleaner
        #: The scope's depth while it is open (1 for the outermost), else ``None``.
        self.depth: int | None = None
        self._entered = False

    def __enter__(self) -> Scope:
        if self.depth is not None or self._entered:
            raise ConfigurationError(
                "alembic-cleandb: this scope was started already; make a new one with "
                "Cleaner.scope() for each with-block"
            )
        self._entered = True
        self.cleaner.reset()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            # Nothing of a failed seed is left behind (the original error propagates; a
            # failing reset sets cleaner.pending, so the next reset tries again).
            try:
                self.cleaner.reset()
            except ResetError as reset_error:
                add_note(exc, str(reset_error))
            return
        self.depth = self.cleaner.push_baseline()

    def end(self) -> None:
        """Bring back the baseline the scope replaced (a no-op for a scope never started or
        ended already). Refuses while a scope started inside this one is still open."""
        if self.depth is None:
            return
        depth = self.cleaner.baseline_depth()
        if depth != self.depth:
            raise ConfigurationError(
                f"alembic-cleandb: cannot end the scoped baseline {self.depth} of "
                f"{self.cleaner.display}: {depth} are open (scopes end innermost first; end "
                "the inner ones before this one)"
            )
        self.cleaner.pop_baseline()
        self.depth = None


@contextmanager
def _tracked(
    target: Target, action: str, allowed: str | None
) -> Iterator[tuple[Backend, Connection, str]]:
    """Open ``target``; check it is a test database with this library's tracking.

    A ``Connection`` that has no transaction of the caller's open gets the work committed when
    the block ends (rolled back if it fails); inside the caller's transaction the work joins
    it, and the caller commits.
    """
    with autocommit_connection(target) as connection:
        ours = isinstance(target, Connection) and not connection.in_transaction()
        try:
            backend = backend_for(connection.dialect.name)
            display = safe_url(connection.engine.url)
            check_database_name(backend.current_database(connection), action, allowed)
            require_installed(backend, connection, display)
            yield backend, connection, display
        except BaseException:
            if ours and connection.in_transaction():
                connection.rollback()
            raise
        if ours and connection.in_transaction():
            connection.commit()


def clean(
    target: Target,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    *,
    allowed_database: str | None = None,
    restart_ids: bool = True,
) -> int:
    """Reset the tables written since the last reset in ``target`` (a URL, Engine or Connection).

    Returns the number of tables reset. Same checks as the pytest plugin: the database must be
    a test database with tracking installed. A connection opened here waits at most
    ``lock_timeout`` seconds for another session's lock (a Connection you pass keeps its own
    settings). ``restart_ids``: as for :class:`Cleaner`.

    Given a ``Connection`` with no transaction open, the work is committed before this returns,
    as with a URL. Called inside a transaction you began, it joins that transaction and you
    commit it (on MySQL/MariaDB the DDL and the reset procedure commit it anyway).
    """
    with _tracked(target, "reset", allowed_database) as (backend, connection, display):
        _check_synced(backend, connection, display)
        if connection is not target:  # opened here
            backend.configure_session(connection, lock_timeout)
        try:
            return backend.resetter(connection, restart_ids)()
        except Exception as exc:
            raise ResetError(backend.explain(exc, display, connection)) from exc


def set_baseline(target: Target, *, allowed_database: str | None = None) -> None:
    """Declare the current contents of every tracked table to be its baseline.

    For session-scoped seed fixtures: seed, then call this, and every reset restores the seed.

    Given a ``Connection`` with no transaction open, the work is committed before this returns,
    as with a URL. Called inside a transaction you began, it joins that transaction and you
    commit it (on MySQL/MariaDB the DDL and the reset procedure commit it anyway).
    """
    with _tracked(target, "set the baseline of", allowed_database) as (backend, connection, _):
        backend.set_baseline(connection)


def sync(target: Target, *, allowed_database: str | None = None) -> None:
    """Attach tracking to tables created outside migrations since the last sync.

    Given a ``Connection`` with no transaction open, the work is committed before this returns,
    as with a URL. Called inside a transaction you began, it joins that transaction and you
    commit it (on MySQL/MariaDB the DDL and the reset procedure commit it anyway).
    """
    with _tracked(target, "sync tracking in", allowed_database) as (backend, connection, _):
        backend.sync(Executor.for_connection(connection), after_migration=False)


def adopt(target: Target, *, allowed_database: str | None = None) -> None:
    """Let a copy of a tracked test database (``CREATE DATABASE ... TEMPLATE``) be reset.

    Every function here takes ``allowed_database``: the exact name of one more database to
    accept besides those whose name contains ``test`` and ``CLEANDB_ALLOW_DATABASE`` (the
    pytest plugin passes it for the worker copies of an explicitly allowed database).

    Given a ``Connection`` with no transaction open, the work is committed before this returns,
    as with a URL. Called inside a transaction you began, it joins that transaction and you
    commit it (on MySQL/MariaDB the DDL and the reset procedure commit it anyway).
    """
    with _tracked(target, "adopt", allowed_database) as (backend, connection, _):
        backend.adopt(connection)
