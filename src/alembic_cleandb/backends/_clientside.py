"""Tracking attached from the client: what MySQL/MariaDB and SQLite have in common.

Neither can discover tables and create triggers from database-side code portably (MySQL 8
rejects ``CREATE TRIGGER`` in prepared statements; SQLite has no routines), so the library
lists the tables at migration time and creates three row triggers per table (INSERT, UPDATE,
DELETE) that insert ``(table id, kind)`` into ``cleandb_dirty`` unless that mark is already
visible. Kind ``i`` (an INSERT happened) tells the reset that the auto-increment counter moved.

Baselines: a table that holds rows after the migrations gets a copy ``cleandb_b<id>``; the
reset deletes the table's rows and copies the baseline back. Each table's reset statements
are computed once, at sync time, and stored in ``cleandb_tables``.

Scoped baselines (layers, :meth:`ClientSideBackend.push_baseline`): a push at depth ``n``
saves the registry row of every table marked dirty in ``cleandb_layers`` (``depth = n``; the
row ``tid = 0`` is the layer itself), copies the table's current rows to
``cleandb_b<id>_<n>`` and points the registry row at that copy. The reset reads the registry
only, so it costs the same inside a layer as outside. A pop puts the saved registry rows back
(their copies were never touched), marks those tables dirty, drops the layer's copies and
resets: the registry always names copies that exist, so a pop stopped midway (MySQL's DDL
commits as it goes) is finished by the next reset, or the next pop.

The dialect modules supply the SQL; this module supplies the order of things.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy.engine import Connection

from .._connect import safe_url
from .._guard import check_database_name
from .._sql import SQL, Composable, Value, execute, quote_name
from ..errors import ConfigurationError
from .base import (
    SCHEMA_VERSION,
    Backend,
    ChangeSource,
    Executor,
    TrackingOptions,
    check_sync_target,
    layers_open_error,
)

PREFIX = "cleandb_"
CONFIG = "cleandb_config"
TABLES = "cleandb_tables"
DIRTY = "cleandb_dirty"
#: The open layers of scoped baselines: the saved registry columns of each table a layer
#: re-took, and one row (``tid = 0``) per open layer.
LAYERS = "cleandb_layers"
#: The registry columns a layer saves (what a baseline is, besides its copy's rows).
LAYER_COLUMNS = (
    "baseline_rows",
    "counter",
    "reset_sql",
    "restore_sql",
    "counter_sql",
    "update_sql",
)
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


def shadow_name(table_id: int, depth: int = 0) -> str:
    """The copy of a table's baseline rows: ``cleandb_b<id>`` for the migrations' (or
    set_baseline()'s) baseline, ``cleandb_b<id>_<depth>`` for a layer's. Far below MySQL's 64
    characters whatever the table's name."""
    return f"{PREFIX}b{table_id}" if not depth else f"{PREFIX}b{table_id}_{depth}"


LAYER_SHADOW = re.compile(rf"{PREFIX}b([0-9]+)_([0-9]+)")


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key of the database, as the dialect lists it."""

    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    #: ``ON DELETE`` or ``ON UPDATE`` ``CASCADE`` / ``SET NULL`` / ``SET DEFAULT``: writes to
    #: the parent change rows of the child.
    cascades: bool


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
    #: The primary key's columns, in key order (empty: none, or not all of them insertable).
    key: tuple[str, ...] = ()
    #: Columns compared as bytes when restoring in place (text, whose collation may call
    #: different strings equal).
    binary: tuple[str, ...] = ()
    #: Whether the application has triggers on the table.
    triggers: bool = False


class ClientSideBackend(Backend):
    """The shared algorithm; subclasses provide the dialect's SQL."""

    names: ClassVar[tuple[str, ...]] = ()
    #: ``CREATE TABLE`` statements of the bookkeeping tables.
    bookkeeping_ddl: ClassVar[tuple[str, ...]] = ()
    #: The registry columns a layer saves (a dialect adds its own, e.g. MySQL's reset_mode).
    layer_columns: ClassVar[tuple[str, ...]] = LAYER_COLUMNS
    #: Whether the last sync stored a dangling-reference check (``check_sql``) for a table.
    checks: bool = False

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

    def shadow_ddl(self, connection: Connection, shadow: str, cols: str, state: TableState) -> str:
        """The statement that copies a seeded table's rows into its baseline table."""
        q = quote_name(connection.dialect, state.name)
        return f"CREATE TABLE {shadow} AS SELECT {cols} FROM {q}"

    def update_statement(
        self, connection: Connection, shadow: str, state: TableState
    ) -> str | None:
        """Restore in place: the statement that puts back the rows that differ from the
        baseline (``None``: the table is restored by deleting and copying every row)."""
        return None

    def drop_trigger_ddl(self, quoted_name: str) -> str:
        return f"DROP TRIGGER IF EXISTS {quoted_name}"

    @abstractmethod
    def statements(
        self, q: str, shadow: str, cols: str, state: TableState
    ) -> tuple[str, str | None, str | None]:
        """``(reset_sql, restore_sql, counter_sql)`` for one table (names already quoted)."""

    def foreign_keys(self, connection: Connection) -> list[ForeignKey]:
        """Every foreign key between two tables of the database."""
        raise NotImplementedError

    def current_counters(self, connection: Connection) -> dict[str, int]:
        """Each table's auto-increment counter now, where the backend can read it cheaply."""
        return {}

    def application_triggers(self, connection: Connection) -> set[str]:
        """The tables the application has triggers on (stored in ``app_triggers`` at every
        sync, for backends whose reset takes them into account)."""
        return set()

    def check_statement(self, expression: str) -> str:
        """The statement that evaluates a dangling-reference check (see :meth:`_relations`)."""
        return f"SELECT {expression}"

    def store_cascades(
        self, ex: Executor, connection: Connection, closure: dict[int, set[int]]
    ) -> None:
        """Hook: keep, for each tracked table, the tracked tables its cascading foreign keys
        reach (transitively), where the backend's triggers miss the rows cascades change."""

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

    def trackable(
        self, connection: Connection, tables: Sequence[str], excluded: set[str]
    ) -> dict[str, bool]:
        """The tables to track, in order, each with whether it gets the marking triggers
        (``False``: the backend finds its writes another way, set up in :meth:`after_sync`).
        May refuse, before the sync creates anything, a schema it cannot track."""
        return {t: True for t in tables if t not in excluded and not self.own_table(t)}

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

    def install(self, ex: Executor, options: TrackingOptions) -> None:
        connection = self._require_online(ex, "install tracking")
        database = self.current_database(connection)
        check_database_name(database, "install tracking in")
        if self.installed_version(connection) == SCHEMA_VERSION:
            self._refuse_in_layers(connection, "install tracking again in")
        self.bind(connection)
        try:
            for ddl in self.bookkeeping_statements():
                ex(ddl)
            execute(connection, f"DELETE FROM {CONFIG}")
            execute(
                connection,
                SQL(
                    f"INSERT INTO {CONFIG} (schema_version, database_name, excluded) "
                    "VALUES ({}, {}, {})"
                ).format(
                    Value(SCHEMA_VERSION),
                    Value(database),
                    Value(json.dumps(list(options.excluded()))),
                ),
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

    def sync(self, ex: Executor, after_migration: bool = True) -> None:
        if ex.connection is None:
            return  # nothing can be attached offline; install already refused offline mode
        version = self.installed_version(ex.connection)
        if version is not None and version < SCHEMA_VERSION and after_migration:
            self.upgrade(ex, after_migration=True)  # a step ran before the branch's upgrade
        elif version is not None:
            check_sync_target(self, ex.connection, version)
            if after_migration:
                self._refuse_in_layers(ex.connection, "sync tracking after a migration step in")
            self._wrapped_sync(ex, ex.connection, everything=False, fresh=after_migration)

    def mark_sync_pending(self, ex: Executor) -> bool:
        """Online, where tracking is installed: say "sync pending" until a sync after a
        migration (or :meth:`set_baseline`) runs."""
        if ex.connection is None or self.installed_version(ex.connection) is None:
            return False
        ex(SQL("CREATE TABLE IF NOT EXISTS {} (since INTEGER)").format(PENDING))
        return True

    def sync_pending(self, connection: Connection) -> bool:
        return PENDING in self.list_tables(connection)

    def set_baseline(self, connection: Connection) -> None:
        version = self.installed_version(connection)
        check_sync_target(self, connection, 0 if version is None else version)
        self._refuse_in_layers(connection, "set the baseline of")
        self._wrapped_sync(Executor.for_connection(connection), connection, everything=True)

    # -- scoped baselines (layers) ----------------------------------------------------------
    def _refuse_in_layers(self, connection: Connection, action: str) -> None:
        depth = self.baseline_depth(connection)
        if depth:
            raise layers_open_error(depth, safe_url(connection.engine.url), action)

    def baseline_depth(self, connection: Connection) -> int:
        return int(
            execute(
                connection, f"SELECT COALESCE(MAX(depth), 0) FROM {LAYERS} WHERE tid = 0"
            ).scalar_one()
        )

    @contextmanager
    def _layer_transaction(self, connection: Connection) -> Iterator[None]:
        """Around a whole push or pop: one transaction where DDL is transactional (SQLite);
        nothing here (MySQL: every DDL commits)."""
        yield

    @contextmanager
    def _registry_transaction(self, connection: Connection) -> Iterator[None]:
        """Around the pop's registry changes, where :meth:`_layer_transaction` is none."""
        yield

    #: ``INSERT IGNORE`` in the dialect (a mark that is there already is no error).
    insert_ignore: ClassVar[str] = "INSERT IGNORE"

    def layer_tables(self, connection: Connection) -> dict[str, tuple[int, int]]:
        """The layers' copies that exist: name -> (table id, depth)."""
        found = {}
        for name in self.list_tables(connection):
            match = LAYER_SHADOW.fullmatch(name)
            if match:
                found[name] = (int(match[1]), int(match[2]))
        return found

    def push_baseline(self, connection: Connection) -> int:
        """Order of the steps (MySQL commits each): the layer's row first, then the saved
        registry rows of its tables (one statement), then per table its copy and its registry
        row pointed at the copy; the marks last. Stopped anywhere, the layer is open and its
        pop puts back every table it saved (one whose copy was not made yet still has its
        registry row, and its marks). SQLite: all of it is one transaction."""
        self.bind(connection)
        ex = Executor.for_connection(connection)
        with self._layer_transaction(connection):
            depth = self.baseline_depth(connection) + 1
            execute(
                connection,
                SQL(f"INSERT INTO {LAYERS} (depth, tid) VALUES ({{}}, 0)").format(Value(depth)),
            )
            unmarked = self.written_unmarked(connection)
            also = (
                SQL(" OR id IN ({})").format(SQL(", ").join(Value(i) for i in unmarked))
                if unmarked
                else SQL("")
            )
            marked = {
                str(n): (int(i), int(r))
                for i, n, r in execute(
                    connection,
                    SQL(
                        f"SELECT id, name, baseline_rows FROM {TABLES} "
                        f"WHERE id IN (SELECT tid FROM {DIRTY}){{}} ORDER BY id"
                    ).format(also),
                )
            }
            if not marked:
                return depth
            ids = SQL(", ").join(Value(i) for i, _ in marked.values())
            cols = ", ".join(self.layer_columns)
            execute(
                connection,
                SQL(
                    f"INSERT INTO {LAYERS} (depth, tid, {cols}) SELECT {{}}, id, {cols} "
                    f"FROM {TABLES} WHERE id IN ({{}})"
                ).format(Value(depth), ids),
            )
            existing = set(self.layer_tables(connection))
            seeded = False
            for state in self.table_states(connection, list(marked)):
                table_id, rows = marked[state.name]
                self._snapshot(ex, connection, table_id, state, existing, depth)
                seeded = seeded or bool(rows) != bool(state.rows)
            execute(connection, SQL(f"DELETE FROM {DIRTY} WHERE tid IN ({{}})").format(ids))
            self._after_layer(ex, connection, ids, seeded)
        return depth

    def pop_baseline(self, connection: Connection) -> int:
        """The saved registry rows go back in one transaction that also marks their tables
        dirty (with an insert: the counter goes back too) and closes the layer; then the
        layer's copies are dropped and the reset runs. On MySQL a failure after that
        transaction (a lock timeout in the reset, a killed connection) leaves the previous
        baselines in place and their tables marked: the next reset finishes the pop."""
        self.bind(connection)
        ex = Executor.for_connection(connection)
        with self._layer_transaction(connection):
            depth = self.baseline_depth(connection)
            if not depth:
                raise ConfigurationError(
                    f"alembic-cleandb: no scoped baseline is open in "
                    f"{safe_url(connection.engine.url)}: pop_baseline() ends the innermost "
                    "layer that push_baseline() started, and there is none; nothing was reset"
                )
            saved = {
                int(t): int(r)
                for t, r in execute(
                    connection,
                    SQL(
                        f"SELECT tid, baseline_rows FROM {LAYERS} WHERE depth = {{}} AND tid > 0"
                    ).format(Value(depth)),
                )
            }
            seeded = False
            if saved:
                ids = SQL(", ").join(Value(t) for t in saved)
                seeded = any(
                    bool(saved[int(t)]) != bool(r)
                    for t, r in execute(
                        connection,
                        SQL(f"SELECT id, baseline_rows FROM {TABLES} WHERE id IN ({{}})").format(
                            ids
                        ),
                    )
                )
            assign = ", ".join(
                f"{c} = (SELECT l.{c} FROM {LAYERS} l "
                f"WHERE l.depth = {{0}} AND l.tid = {TABLES}.id)"
                for c in self.layer_columns
            )
            with self._registry_transaction(connection):
                if saved:
                    execute(
                        connection,
                        SQL(
                            f"UPDATE {TABLES} SET {assign} WHERE id IN "
                            f"(SELECT tid FROM {LAYERS} WHERE depth = {{0}} AND tid > 0)"
                        ).format(Value(depth)),
                    )
                    execute(
                        connection,
                        SQL(
                            f"{self.insert_ignore} INTO {DIRTY} (tid, kind) SELECT tid, 'i' "
                            f"FROM {LAYERS} WHERE depth = {{}} AND tid > 0"
                        ).format(Value(depth)),
                    )
                execute(
                    connection,
                    SQL(f"DELETE FROM {LAYERS} WHERE depth = {{}}").format(Value(depth)),
                )
            if saved:  # (before the drops: a check must never name a copy that is gone)
                self._after_layer(ex, connection, ids, seeded)
            # The copies of this layer and of any deeper one a failure left behind.
            for name, (_, level) in sorted(self.layer_tables(connection).items()):
                if level >= depth:
                    ex(f"DROP TABLE {quote_name(connection.dialect, name)}")
            self.resetter(connection)()
        return depth - 1

    def _after_layer(
        self, ex: Executor, connection: Connection, ids: Composable, seeded: bool
    ) -> None:
        """After tables took another baseline: the dangling-reference checks of those that
        have one name the new baseline's copy; the routines learn which tables are seeded."""
        checked = execute(
            connection,
            SQL(
                f"SELECT 1 FROM {TABLES} WHERE check_sql IS NOT NULL AND id IN ({{}}) LIMIT 1"
            ).format(ids),
        ).first()
        if checked is not None:
            tracked = {
                str(n): int(i) for n, i in execute(connection, f"SELECT name, id FROM {TABLES}")
            }
            self._relations(ex, connection, tracked, set(self.list_tables(connection)))
            seeded = True
        if seeded:
            self.refresh_routines(ex, connection)

    def written_unmarked(self, connection: Connection) -> list[int]:
        """Tables written without a mark that the reset finds all the same (MySQL: seeded
        tables emptied by TRUNCATE, which fires no trigger): a push takes them too."""
        return []

    def refresh_routines(self, ex: Executor, connection: Connection) -> None:
        """The database-side routines made again for the registry as it is (no marks
        cleared)."""
        seeded = execute(
            connection, f"SELECT id, name FROM {TABLES} WHERE baseline_rows > 0 ORDER BY id"
        ).fetchall()
        self.after_sync(
            ex, [(int(i), quote_name(connection.dialect, n)) for i, n in seeded], fresh=False
        )

    def installed_database(self, connection: Connection) -> str | None:
        name = execute(connection, f"SELECT database_name FROM {CONFIG}").scalar()
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
        execute(
            connection,
            SQL(f"UPDATE {CONFIG} SET database_name = {{}}").format(
                Value(self.current_database(connection))
            ),
        )

    def installed_version(self, connection: Connection) -> int | None:
        if CONFIG not in self.list_tables(connection):
            return None
        version = execute(connection, f"SELECT schema_version FROM {CONFIG}").scalar()
        return 0 if version is None else int(version)

    def own_table(self, name: str) -> bool:
        return name.startswith(PREFIX)

    def dirty_tables(self, connection: Connection) -> list[str]:
        return [
            str(r[0])
            for r in execute(
                connection, f"SELECT DISTINCT t.name FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid"
            )
        ]

    def tracked_tables(self, connection: Connection) -> list[str]:
        return [str(r[0]) for r in execute(connection, f"SELECT name FROM {TABLES}")]

    # -- what a test wrote ----------------------------------------------------------------
    def changed_ids(self, connection: Connection) -> set[int]:
        """The ids of the tables a test may have written: those marked dirty."""
        return {int(r[0]) for r in execute(connection, f"SELECT DISTINCT tid FROM {DIRTY}")}

    def change_key(self, connection: Connection, state: TableState) -> tuple[str, ...]:
        """The primary key rows are matched by (empty: compared as a multiset)."""
        return state.key

    def group_column(self, column: str, state: TableState, name: str) -> str:
        """How the comparison groups a column (``column``: its quoted alias; ``name``: the
        table's column), so that values the collation calls equal stay apart."""
        return column

    def change_sources(self, connection: Connection) -> list[ChangeSource]:
        """Each dirty table against its baseline copy (no copy: an empty baseline)."""
        ids = self.changed_ids(connection)
        if not ids:
            return []
        tables: dict[str, int] = {}
        seeded: dict[str, bool] = {}
        found = execute(connection, f"SELECT id, name, baseline_rows FROM {TABLES} ORDER BY name")
        for table_id, name, rows in found:
            if int(table_id) in ids:
                tables[str(name)] = int(table_id)
                seeded[str(name)] = int(rows) > 0
        # (inside scoped baselines, a table's baseline is the copy of the innermost layer that
        # took it again)
        depths = {
            int(t): int(d)
            for t, d in execute(
                connection, f"SELECT tid, MAX(depth) FROM {LAYERS} WHERE tid > 0 GROUP BY tid"
            )
        }
        dialect = connection.dialect
        sources = []
        for state in self.table_states(connection, list(tables)):
            key = self.change_key(connection, state)
            aliases = [f"c{i}" for i in range(len(state.columns))]
            cols = ", ".join(
                f"{quote_name(dialect, c)} AS {a}" for c, a in zip(state.columns, aliases)
            )
            union = f"SELECT {cols}, 1 AS cleandb_s FROM {quote_name(dialect, state.name)}"
            if seeded[state.name]:
                table_id = tables[state.name]
                shadow = quote_name(dialect, shadow_name(table_id, depths.get(table_id, 0)))
                union += f" UNION ALL SELECT {cols}, -1 FROM {shadow}"
            grouped = ", ".join(
                self.group_column(f"cleandb_u.{a}", state, c)
                for c, a in zip(state.columns, aliases)
            )
            differences = SQL(
                f"SELECT {', '.join(aliases)}, sum(cleandb_s) AS cleandb_n FROM ({union}) "
                f"cleandb_u GROUP BY {grouped} HAVING sum(cleandb_s) <> 0"
            )
            sources.append(ChangeSource(state.name, state.columns, key, differences))
        return sources

    def _excluded(self, connection: Connection) -> set[str]:
        raw = execute(connection, f"SELECT excluded FROM {CONFIG}").scalar()
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
        with_triggers = self.trackable(connection, tables, excluded)
        present = list(with_triggers)
        tracked: dict[str, int] = {
            str(n): int(i) for n, i in execute(connection, f"SELECT name, id FROM {TABLES}")
        }
        for name, table_id in list(tracked.items()):
            if name not in present:  # dropped (or renamed) behind the tracker's back
                self._forget(ex, connection, table_id)
                del tracked[name]
        new = [t for t in present if t not in tracked]
        for name in new:
            execute(
                connection, SQL(f"INSERT INTO {TABLES} (name) VALUES ({{}})").format(Value(name))
            )
            table_id = int(
                execute(
                    connection,
                    SQL(f"SELECT id FROM {TABLES} WHERE name = {{}}").format(Value(name)),
                ).scalar_one()
            )
            q = quote_name(connection.dialect, name)
            try:
                for kind, event in KINDS if with_triggers[name] else ():
                    ex(self.trigger_ddl(q, table_id, kind, event))
            except Exception:
                # All three triggers or none: a later run (once the cause is fixed) sees the
                # table as new again instead of tracking it with a trigger missing.
                self._forget(ex, connection, table_id)
                raise
            tracked[name] = table_id
        dirty = {int(r[0]) for r in execute(connection, f"SELECT DISTINCT tid FROM {DIRTY}")}
        seeded_before = {
            int(r[0])
            for r in execute(connection, f"SELECT id FROM {TABLES} WHERE baseline_rows > 0")
        }
        if fresh and not everything:
            # A migration step that only moved a counter (ALTER TABLE ... AUTO_INCREMENT = 1000
            # on an empty table) fires no trigger: its table takes a new baseline too.
            stored = {
                str(n): c for n, c in execute(connection, f"SELECT name, counter FROM {TABLES}")
            }
            moved = {
                name
                for name, counter in self.current_counters(connection).items()
                if name in stored and stored[name] is not None and int(stored[name]) != counter
            }
        else:
            moved = set()
        todo = [
            name
            for name, table_id in tracked.items()
            if everything
            or name in new
            or name in moved
            # a table without triggers has no marks to say it was written: take it again
            or (
                fresh
                and (table_id in dirty or table_id in seeded_before or not with_triggers[name])
            )
        ]
        for state in self.table_states(connection, todo):
            self._snapshot(ex, connection, tracked[state.name], state, existing)
        self._relations(ex, connection, tracked, existing)
        seeded = execute(
            connection, f"SELECT id, name FROM {TABLES} WHERE baseline_rows > 0 ORDER BY id"
        ).fetchall()
        self.after_sync(ex, [(int(i), quote_name(connection.dialect, n)) for i, n in seeded], fresh)
        if fresh:
            execute(connection, f"DELETE FROM {DIRTY}")
            if PENDING in existing:
                ex(f"DROP TABLE {quote_name(connection.dialect, PENDING)}")

    def _relations(
        self, ex: Executor, connection: Connection, tracked: dict[str, int], existing: set[str]
    ) -> None:
        """What foreign keys mean for the reset, taken again at every sync.

        * Cascades (:meth:`store_cascades`): a write to a table may change every tracked table
          its cascading foreign keys reach.
        * Untracked tables that reference a tracked one: the reset runs with foreign-key
          checks off, so before it writes anything it checks, for each dirty table that has
          such references, that no row of an untracked table references a row the reset
          would remove (a key the baseline lacks; any key when the baseline is empty), and
          refuses otherwise, keeping its marks. ``check_sql`` is that check: it returns 0, or
          k when the k-th untracked table of ``check_names`` (a JSON list) has such a row.
        """
        fks = [
            fk
            for fk in self.foreign_keys(connection)
            if not self.own_table(fk.child) and not self.own_table(fk.parent)
        ]
        closure: dict[int, set[int]] = {}
        edges: dict[int, set[int]] = {}
        for fk in fks:
            if fk.cascades and fk.child in tracked and fk.parent in tracked:
                edges.setdefault(tracked[fk.parent], set()).add(tracked[fk.child])
        for start in edges:
            seen: set[int] = set()
            todo = list(edges[start])
            while todo:
                table_id = todo.pop()
                if table_id not in seen:
                    seen.add(table_id)
                    todo.extend(edges.get(table_id, ()))
            seen.discard(start)
            if seen:
                closure[start] = seen
        self.store_cascades(ex, connection, closure)
        rows = {
            int(i): int(n)
            for i, n in execute(connection, f"SELECT id, baseline_rows FROM {TABLES}")
        }
        # A table a layer re-took: its baseline's copy is that of its innermost layer.
        depths = {
            int(t): int(d)
            for t, d in execute(
                connection, f"SELECT tid, MAX(depth) FROM {LAYERS} WHERE tid > 0 GROUP BY tid"
            )
        }
        checks: dict[int, list[tuple[str, str]]] = {}
        dialect = connection.dialect
        for fk in fks:
            if fk.parent not in tracked or fk.child in tracked or fk.child not in existing:
                continue
            table_id = tracked[fk.parent]
            # Stored text, run later by the reset: names quoted, no parameters.
            child = "cleandb_c"
            refs = " AND ".join(
                f"{child}.{quote_name(dialect, c)} IS NOT NULL" for c in fk.child_columns
            )
            condition = f"SELECT 1 FROM {quote_name(dialect, fk.child)} {child} WHERE {refs}"
            if rows.get(table_id):
                base = "cleandb_p"
                same = " AND ".join(
                    f"{base}.{quote_name(dialect, p)} = {child}.{quote_name(dialect, c)}"
                    for c, p in zip(fk.child_columns, fk.parent_columns, strict=True)
                )
                shadow = quote_name(dialect, shadow_name(table_id, depths.get(table_id, 0)))
                condition += f" AND NOT EXISTS (SELECT 1 FROM {shadow} {base} WHERE {same})"
            checks.setdefault(table_id, []).append((fk.child, f"EXISTS ({condition})"))
        triggered = [tracked[t] for t in self.application_triggers(connection) if t in tracked]
        execute(connection, f"UPDATE {TABLES} SET app_triggers = 0 WHERE app_triggers <> 0")
        for table_id in triggered:
            execute(
                connection,
                SQL(f"UPDATE {TABLES} SET app_triggers = 1 WHERE id = {{}}").format(
                    Value(table_id)
                ),
            )
        execute(
            connection,
            f"UPDATE {TABLES} SET check_sql = NULL, check_names = NULL WHERE check_sql IS NOT NULL",
        )
        self.checks = bool(checks)
        for table_id, found in checks.items():
            cases = " ".join(f"WHEN {e} THEN {k}" for k, (_, e) in enumerate(found, 1))
            execute(
                connection,
                SQL(
                    f"UPDATE {TABLES} SET check_sql = {{}}, check_names = {{}} WHERE id = {{}}"
                ).format(
                    Value(self.check_statement(f"CASE {cases} ELSE 0 END")),
                    Value(json.dumps([name for name, _ in found])),
                    Value(table_id),
                ),
            )

    def _snapshot(
        self,
        ex: Executor,
        connection: Connection,
        table_id: int,
        state: TableState,
        existing: set[str],
        depth: int = 0,
    ) -> None:
        """``existing``: the tables of the database when the sync started. The old shadow is
        dropped only if it is among them: on MariaDB even ``DROP TABLE IF EXISTS`` of a table
        that is not there is DDL (1.8 ms), which was 0.37 s of an install on 200 tables.
        ``depth``: the layer whose baseline this is (0: the migrations')."""
        q = quote_name(connection.dialect, state.name)
        shadow = quote_name(connection.dialect, shadow_name(table_id, depth))
        cols = ", ".join(quote_name(connection.dialect, c) for c in state.columns)
        if shadow_name(table_id, depth) in existing:
            ex(f"DROP TABLE {shadow}")
        if state.rows:
            ex(self.shadow_ddl(connection, shadow, cols, state))
        reset_sql, restore_sql, counter_sql = self.statements(q, shadow, cols, state)
        update_sql = self.update_statement(connection, shadow, state) if state.rows else None
        values = (
            state.rows,
            state.counter,
            reset_sql,
            restore_sql,
            counter_sql,
            update_sql,
            table_id,
        )
        execute(
            connection,
            SQL(
                f"UPDATE {TABLES} SET baseline_rows = {{}}, counter = {{}}, reset_sql = {{}}, "
                "restore_sql = {}, counter_sql = {}, update_sql = {} WHERE id = {}"
            ).format(*map(Value, values)),
        )

    def _forget(self, ex: Executor, connection: Connection, table_id: int) -> None:
        # The rows first: on MySQL the DDL after them commits them too, even when the caller's
        # transaction is rolled back (a failed install must not leave a table half-attached).
        execute(connection, SQL(f"DELETE FROM {DIRTY} WHERE tid = {{}}").format(Value(table_id)))
        execute(connection, SQL(f"DELETE FROM {TABLES} WHERE id = {{}}").format(Value(table_id)))
        depths = [
            int(d)
            for (d,) in execute(
                connection,
                SQL(f"SELECT depth FROM {LAYERS} WHERE tid = {{}}").format(Value(table_id)),
            )
        ]
        execute(connection, SQL(f"DELETE FROM {LAYERS} WHERE tid = {{}}").format(Value(table_id)))
        for kind, _ in KINDS:
            ex(self.drop_trigger_ddl(quote_name(connection.dialect, trigger_name(table_id, kind))))
        for depth in (0, *depths):
            shadow = quote_name(connection.dialect, shadow_name(table_id, depth))
            ex(f"DROP TABLE IF EXISTS {shadow}")

    def uninstall(self, ex: Executor) -> None:
        """Drop every object whose name has the library's prefix, whichever version made it."""
        connection = self._require_online(ex, "remove tracking")
        found = self.own_objects(connection)
        for kind, name in sorted(found, key=lambda o: (_DROP_ORDER.get(o[0], 9), o[1])):
            ex(f"DROP {kind} IF EXISTS {quote_name(connection.dialect, name)}")

    def installed_options(self, connection: Connection) -> TrackingOptions:
        return TrackingOptions(exclude=tuple(sorted(self._excluded(connection))))

    def has_marks(self, connection: Connection) -> bool:
        return execute(connection, f"SELECT 1 FROM {DIRTY} LIMIT 1").first() is not None

    def upgrade_offline(self, ex: Executor) -> None:
        self._require_online(ex, "upgrade tracking")
