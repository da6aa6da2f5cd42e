"""Tracking attached from the client: what MySQL/MariaDB and SQLite have in common.

Neither can discover tables and create triggers from database-side code portably (MySQL 8
rejects ``CREATE TRIGGER`` in prepared statements; SQLite has no routines), so the library
lists the tables at migration time and creates three row triggers per table (INSERT, UPDATE,
DELETE) that insert ``(table id, kind)`` into ``cleandb_dirty`` unless that mark is already
visible. Kind ``i`` (an INSERT happened) tells the reset that the auto-increment counter moved.

Baselines: a table that holds rows after the migrations gets a copy ``cleandb_b<id>``; the
reset deletes the table's rows and copies the baseline back. Each table's reset statements
are computed once, at sync time, and stored in ``cleandb_tables``.

The dialect modules supply the SQL; this module supplies the order of things.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.engine import Connection

from .._guard import check_database_name
from ..errors import ConfigurationError
from .base import SCHEMA_VERSION, Backend, Executor, TrackingOptions, check_sync_target

PREFIX = "cleandb_"
CONFIG = "cleandb_config"
TABLES = "cleandb_tables"
DIRTY = "cleandb_dirty"
#: Exists while a migration run has steps done and its closing sync still to come.
PENDING = "cleandb_sync_pending"
KINDS = (("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE"))
#: Passes of one reset at most: a trigger of the application's that writes a table while the
#: reset deletes or restores rows of another marks that table, and the next pass resets it.
MAX_PASSES = 5
#: Triggers first (they name tables and routines), indexes last (most go with their table).
_DROP_ORDER = {"TRIGGER": 0, "PROCEDURE": 1, "FUNCTION": 1, "VIEW": 2, "TABLE": 3, "SEQUENCE": 4}


def trigger_name(table_id: int, kind: str) -> str:
    """Trigger names are built from the table's id: always far below MySQL's 64 characters."""
    return f"{PREFIX}{table_id}_{kind}"


def shadow_name(table_id: int) -> str:
    return f"{PREFIX}b{table_id}"


@dataclass(frozen=True)
class TableState:
    """What a snapshot learns about one table."""

    name: str
    rows: int
    counter: int | None  # next auto-increment value at baseline, if the table has one
    columns: tuple[str, ...]  # insertable (non-generated) columns
    #: The counter that re-inserting the baseline rows (keys included) into the emptied table
    #: leaves behind; ``None`` when unknown. Where it equals ``counter``, a reset that empties
    #: the table and copies the baseline back needs no separate counter restore.
    restored_counter: int | None = None


class ClientSideBackend(Backend):
    """The shared algorithm; subclasses provide the dialect's SQL."""

    names: ClassVar[tuple[str, ...]] = ()
    #: ``CREATE TABLE`` statements of the bookkeeping tables.
    bookkeeping_ddl: ClassVar[tuple[str, ...]] = ()

    # -- dialect hooks ------------------------------------------------------------------
    @abstractmethod
    def list_tables(self, connection: Connection) -> list[str]:
        """Every base table of the database, cleandb's own included."""

    @abstractmethod
    def table_states(self, connection: Connection, names: Sequence[str]) -> list[TableState]:
        """Rows, counter and insertable columns of each table, for its baseline."""

    @abstractmethod
    def trigger_ddl(self, quote_table: str, table_id: int, kind: str, event: str) -> str:
        """``CREATE TRIGGER`` that marks the table (``kind``) after ``event``."""

    def drop_trigger_ddl(self, quoted_name: str) -> str:
        return f"DROP TRIGGER IF EXISTS {quoted_name}"

    @abstractmethod
    def statements(
        self, q: str, shadow: str, cols: str, state: TableState
    ) -> tuple[str, str | None, str | None]:
        """``(reset_sql, restore_sql, counter_sql)`` for one table (names already quoted)."""

    def bind(self, connection: Connection) -> None:
        """Hook: learn what the server offers before installing or syncing (e.g. the MySQL
        family's flavour), so that the emitted objects fit it."""

    def after_sync(
        self, ex: Executor, seeded: Sequence[tuple[int, str]], fresh: bool = True
    ) -> None:
        """Hook: (re)create database-side routines once the tables are known (``fresh``: the
        marks are about to be cleared)."""

    def wrap_error(self, exc: Exception, database: str) -> Exception | None:
        return None

    @abstractmethod
    def own_objects(self, connection: Connection) -> list[tuple[str, str]]:
        """``(kind, name)`` of every object whose name has the library's prefix, as the
        catalog lists them (``kind``: ``TABLE``, ``TRIGGER``, ``PROCEDURE``, ...)."""

    # -- the algorithm ------------------------------------------------------------------
    def _require_online(self, ex: Executor, what: str) -> Connection:
        if ex.connection is None:
            raise ConfigurationError(
                f"alembic-cleandb cannot {what} in offline (--sql) mode on {self.names[0]}: "
                "its triggers are created per table by a live connection that lists the "
                "tables. Run the migration online instead: "
                "`alembic -n cleandb upgrade cleandb@head` against the test database."
            )
        return ex.connection

    def _q(self, connection: Connection, name: str) -> str:
        """The identifier, always quoted the dialect's way - but without the ``%`` doubling
        SQLAlchemy adds for drivers that format parameters: these statements run, or are
        stored to run, without any (a table named ``100%`` stays ``100%``)."""
        p = connection.dialect.identifier_preparer
        return p.initial_quote + name.replace(p.escape_quote, p.escape_to_quote) + p.final_quote

    def install(self, ex: Executor, options: TrackingOptions) -> None:
        connection = self._require_online(ex, "install tracking")
        database = self.current_database(connection)
        check_database_name(database, "install tracking in")
        self.bind(connection)
        try:
            for ddl in self.bookkeeping_statements():
                ex(ddl)
            connection.exec_driver_sql(f"DELETE FROM {CONFIG}")
            connection.exec_driver_sql(
                f"INSERT INTO {CONFIG} (schema_version, database_name, excluded) "
                "VALUES (?, ?, ?)".replace("?", self._param_marker(connection)),
                (SCHEMA_VERSION, database, json.dumps(list(options.excluded()))),
            )
            self._sync(ex, connection, everything=False)
        except Exception as exc:
            wrapped = self.wrap_error(exc, database)
            if wrapped is None:
                raise
            raise wrapped from exc

    def bookkeeping_statements(self) -> tuple[str, ...]:
        """The statements that create the bookkeeping objects (default: ``bookkeeping_ddl``)."""
        return self.bookkeeping_ddl

    @staticmethod
    def _param_marker(connection: Connection) -> str:
        return "?" if connection.dialect.paramstyle == "qmark" else "%s"

    def sync(self, ex: Executor, after_migration: bool = True) -> None:
        if ex.connection is None:
            return  # nothing can be attached offline; install already refused offline mode
        version = self.installed_version(ex.connection)
        if version is not None and version < SCHEMA_VERSION and after_migration:
            self.upgrade(ex, after_migration=True)  # a step ran before the branch's upgrade
        elif version is not None:
            check_sync_target(self, ex.connection, version)
            self._wrapped_sync(ex, ex.connection, everything=False, fresh=after_migration)

    def mark_sync_pending(self, ex: Executor) -> bool:
        """Online, where tracking is installed: say "sync pending" until a sync after a
        migration (or :meth:`set_baseline`) runs."""
        if ex.connection is None or self.installed_version(ex.connection) is None:
            return False
        ex(f"CREATE TABLE IF NOT EXISTS {self._q(ex.connection, PENDING)} (since INTEGER)")
        return True

    def sync_pending(self, connection: Connection) -> bool:
        return PENDING in self.list_tables(connection)

    def set_baseline(self, connection: Connection) -> None:
        version = self.installed_version(connection)
        check_sync_target(self, connection, 0 if version is None else version)
        self._wrapped_sync(Executor.for_connection(connection), connection, everything=True)

    def installed_database(self, connection: Connection) -> str | None:
        name = connection.exec_driver_sql(f"SELECT database_name FROM {CONFIG}").scalar()
        return None if name is None else str(name)

    def _wrapped_sync(
        self, ex: Executor, connection: Connection, everything: bool, fresh: bool = True
    ) -> None:
        try:
            self._sync(ex, connection, everything, fresh)
        except Exception as exc:
            wrapped = self.wrap_error(exc, self.current_database(connection))
            if wrapped is None:
                raise
            raise wrapped from exc

    def adopt(self, connection: Connection) -> None:
        connection.exec_driver_sql(
            f"UPDATE {CONFIG} SET database_name = {self._param_marker(connection)}",
            (self.current_database(connection),),
        )

    def installed_version(self, connection: Connection) -> int | None:
        if CONFIG not in self.list_tables(connection):
            return None
        version = connection.exec_driver_sql(f"SELECT schema_version FROM {CONFIG}").scalar()
        return 0 if version is None else int(version)

    def own_table(self, name: str) -> bool:
        return name.startswith(PREFIX)

    def dirty_tables(self, connection: Connection) -> list[str]:
        return [
            str(r[0])
            for r in connection.exec_driver_sql(
                f"SELECT DISTINCT t.name FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid"
            )
        ]

    def tracked_tables(self, connection: Connection) -> list[str]:
        return [str(r[0]) for r in connection.exec_driver_sql(f"SELECT name FROM {TABLES}")]

    def _excluded(self, connection: Connection) -> set[str]:
        raw = connection.exec_driver_sql(f"SELECT excluded FROM {CONFIG}").scalar()
        return set(json.loads(raw or "[]"))

    def _sync(
        self, ex: Executor, connection: Connection, everything: bool, fresh: bool = True
    ) -> None:
        """Attach new tables and forget dropped ones. ``fresh`` (after a migration step,
        install, set_baseline): also re-take the baseline of the tables written since the last
        reset and clear the marks; otherwise (tables created outside migrations) only new
        tables take a baseline, and the marks stay for the next reset."""
        self.bind(connection)
        excluded = self._excluded(connection)
        tables = self.list_tables(connection)
        existing = set(tables)
        present = [t for t in tables if t not in excluded and not self.own_table(t)]
        tracked: dict[str, int] = {
            str(n): int(i) for n, i in connection.exec_driver_sql(f"SELECT name, id FROM {TABLES}")
        }
        marker = self._param_marker(connection)
        for name, table_id in list(tracked.items()):
            if name not in present:  # dropped (or renamed) behind the tracker's back
                self._forget(ex, connection, table_id)
                del tracked[name]
        new = [t for t in present if t not in tracked]
        for name in new:
            connection.exec_driver_sql(f"INSERT INTO {TABLES} (name) VALUES ({marker})", (name,))
            table_id = int(
                connection.exec_driver_sql(
                    f"SELECT id FROM {TABLES} WHERE name = {marker}", (name,)
                ).scalar_one()
            )
            q = self._q(connection, name)
            try:
                for kind, event in KINDS:
                    ex(self.trigger_ddl(q, table_id, kind, event))
            except Exception:
                # All three triggers or none: a later run (once the cause is fixed) sees the
                # table as new again instead of tracking it with a trigger missing.
                self._forget(ex, connection, table_id)
                raise
            tracked[name] = table_id
        dirty = {int(r[0]) for r in connection.exec_driver_sql(f"SELECT DISTINCT tid FROM {DIRTY}")}
        seeded_before = {
            int(r[0])
            for r in connection.exec_driver_sql(f"SELECT id FROM {TABLES} WHERE baseline_rows > 0")
        }
        todo = [
            name
            for name, table_id in tracked.items()
            if everything
            or name in new
            or (fresh and (table_id in dirty or table_id in seeded_before))
        ]
        for state in self.table_states(connection, todo):
            self._snapshot(ex, connection, tracked[state.name], state, existing)
        seeded = connection.exec_driver_sql(
            f"SELECT id, name FROM {TABLES} WHERE baseline_rows > 0 ORDER BY id"
        ).fetchall()
        self.after_sync(ex, [(int(i), self._q(connection, n)) for i, n in seeded], fresh)
        if fresh:
            connection.exec_driver_sql(f"DELETE FROM {DIRTY}")
            if PENDING in existing:
                ex(f"DROP TABLE {self._q(connection, PENDING)}")

    def _snapshot(
        self,
        ex: Executor,
        connection: Connection,
        table_id: int,
        state: TableState,
        existing: set[str],
    ) -> None:
        """``existing``: the tables of the database when the sync started. The old shadow is
        dropped only if it is among them: on MariaDB even ``DROP TABLE IF EXISTS`` of a table
        that is not there is DDL (1.8 ms), which was 0.37 s of an install on 200 tables."""
        q = self._q(connection, state.name)
        shadow = self._q(connection, shadow_name(table_id))
        cols = ", ".join(self._q(connection, c) for c in state.columns)
        if shadow_name(table_id) in existing:
            ex(f"DROP TABLE {shadow}")
        if state.rows:
            ex(f"CREATE TABLE {shadow} AS SELECT {cols} FROM {q}")
        reset_sql, restore_sql, counter_sql = self.statements(q, shadow, cols, state)
        marker = self._param_marker(connection)
        connection.exec_driver_sql(
            f"UPDATE {TABLES} SET baseline_rows = {marker}, counter = {marker}, "
            f"reset_sql = {marker}, restore_sql = {marker}, counter_sql = {marker} "
            f"WHERE id = {marker}",
            (state.rows, state.counter, reset_sql, restore_sql, counter_sql, table_id),
        )

    def _forget(self, ex: Executor, connection: Connection, table_id: int) -> None:
        # The rows first: on MySQL the DDL after them commits them too, even when the caller's
        # transaction is rolled back (a failed install must not leave a table half-attached).
        marker = self._param_marker(connection)
        connection.exec_driver_sql(f"DELETE FROM {DIRTY} WHERE tid = {marker}", (table_id,))
        connection.exec_driver_sql(f"DELETE FROM {TABLES} WHERE id = {marker}", (table_id,))
        for kind, _ in KINDS:
            ex(self.drop_trigger_ddl(self._q(connection, trigger_name(table_id, kind))))
        ex(f"DROP TABLE IF EXISTS {self._q(connection, shadow_name(table_id))}")

    def uninstall(self, ex: Executor) -> None:
        """Drop every object whose name has the library's prefix, whichever version made it."""
        connection = self._require_online(ex, "remove tracking")
        found = self.own_objects(connection)
        for kind, name in sorted(found, key=lambda o: (_DROP_ORDER.get(o[0], 9), o[1])):
            ex(f"DROP {kind} IF EXISTS {self._q(connection, name)}")

    def installed_options(self, connection: Connection) -> TrackingOptions:
        return TrackingOptions(exclude=tuple(sorted(self._excluded(connection))))

    def has_marks(self, connection: Connection) -> bool:
        return connection.exec_driver_sql(f"SELECT 1 FROM {DIRTY} LIMIT 1").first() is not None

    def upgrade_offline(self, ex: Executor) -> None:
        self._require_online(ex, "upgrade tracking")
