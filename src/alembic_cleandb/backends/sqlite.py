"""SQLite: every statement alembic-cleandb sends to SQLite lives here.

SQLite has no routines, so the reset is done by the library: one query finds the dirty
tables (nothing more happens when none is), then one transaction deletes their rows, copies
the baselines back and restores ``sqlite_sequence`` - and does it again for any table that an
application's trigger wrote to meanwhile. The reset connection turns foreign keys
off for that transaction, so neither their order nor ``ON DELETE CASCADE`` matters.

Virtual tables (FTS5, FTS3/FTS4, R*Tree, ...) keep their rows in ordinary "shadow" tables
(``docs_data``, ``docs_idx``, ...). A virtual table cannot have triggers, and row triggers on
shadow tables crash SQLite 3.40 with a segmentation fault on the next FTS write, so neither
gets any: the shadow tables are tracked, with a baseline copy each, and the reset finds their
writes by comparing them with the baseline (``probe_sql``, built at every sync): for FTS5 the
index's structure and averages records, which every write that changes the index rewrites;
for the other modules every row. A written virtual table is reset by copying its shadow
tables back byte for byte: the index exactly as the migrations left it, consistent with its
external-content table (reset from its own baseline), cheaper than an FTS ``'rebuild'``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy.engine import URL, Connection

from .._connect import safe_url
from .._guard import check_database_name
from .._sql import (
    SQL,
    Identifier,
    Literal,
    Value,
    error_number,
    execute,
    message,
    quote_name,
)
from ..errors import ConfigurationError, ResetError
from ._clientside import (
    CONFIG,
    DIRTY,
    LAYERS,
    MAX_PASSES,
    PREFIX,
    TABLES,
    ClientSideBackend,
    ForeignKey,
    TableState,
    shadow_name,
    trigger_name,
)
from .base import LOCK_TIMEOUT, MISSING_TABLE, Executor, TrackingOptions

_SQLITE_ERROR, _SQLITE_BUSY, _SQLITE_LOCKED = 1, 5, 6

#: The shadow tables of SQLite's own virtual-table modules, by module: ``<table>_<suffix>``
#: (https://sqlite.org/fts5.html, fts3.html, rtree.html, geopoly.html). Of any other module,
#: every table named ``<table>_...`` is taken for one (compared row by row: exact either way).
_SHADOW_SUFFIXES = {
    "fts5": ("config", "content", "data", "docsize", "idx"),
    "fts4": ("content", "docsize", "segdir", "segments", "stat"),
    "fts3": ("content", "docsize", "segdir", "segments", "stat"),
    "rtree": ("node", "parent", "rowid"),
    "rtree_i32": ("node", "parent", "rowid"),
    "geopoly": ("node", "parent", "rowid"),
}
_MODULE = re.compile(r"\bUSING\s+[\"'`\[]?(\w+)", re.IGNORECASE)
#: An FTS5 option naming an external content table (or none): no ``_content`` shadow table.
_EXTERNAL_CONTENT = re.compile(r"\bcontent\s*=", re.IGNORECASE)
#: The FTS5 records every write that changes the index rewrites: averages (row and token
#: counts) and structure (segments, write counter, configuration cookie).
_FTS5_RECORDS = (1, 10)
#: A savepoint makes every virtual table written in the open transaction flush what it keeps
#: in memory to its shadow tables (FTS3/FTS4 pending terms, the FTS5 hash). The reset needs no
#: such step in a caller's transaction: what the probe reads (FTS5's averages, FTS3/FTS4's
#: content and statistics) is written at once, and the reset's own savepoint flushes the rest
#: before it copies anything back.
_FLUSH_VIRTUAL_TABLES = ("SAVEPOINT cleandb_flush", "RELEASE cleandb_flush")
#: The first tracking schema version whose ``cleandb_config`` has ``probe_sql``.
_PROBES_SINCE = 7


@dataclass(frozen=True)
class VirtualTable:
    """A virtual table and the shadow tables that hold its rows."""

    name: str
    module: str
    shadows: tuple[str, ...]


def virtual_tables(connection: Connection, tables: Sequence[str]) -> list[VirtualTable]:
    """The database's virtual tables (``tables``: every table of the database)."""
    found = []
    for name, sql in execute(
        connection,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND "
        "upper(substr(sql, 1, 20)) = 'CREATE VIRTUAL TABLE' ORDER BY name",
    ):
        match = _MODULE.search(str(sql))
        module = match.group(1).lower() if match else ""
        suffixes = _SHADOW_SUFFIXES.get(module)
        if suffixes is None:
            shadows = [t for t in tables if t.startswith(f"{name}_")]
        else:
            if module == "fts5" and _EXTERNAL_CONTENT.search(str(sql)):
                suffixes = tuple(s for s in suffixes if s != "content")
            shadows = [f"{name}_{s}" for s in suffixes if f"{name}_{s}" in tables]
        found.append(VirtualTable(str(name), module, tuple(shadows)))
    return found


class SQLiteBackend(ClientSideBackend):
    names: ClassVar[tuple[str, ...]] = ("sqlite",)

    def error_kind(self, exc: BaseException) -> str | None:
        # SQLite's result codes (Python 3.11+ has them on the error); a missing table has
        # only the generic SQLITE_ERROR, so there (and before 3.11) the message tells.
        code = error_number(exc)
        text = message(exc)
        if code is None:
            locked = "database is locked" in text or "database table is locked" in text
        else:
            locked = code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        if locked:
            return LOCK_TIMEOUT
        if (code is None or code & 0xFF == _SQLITE_ERROR) and "no such table" in text:
            return MISSING_TABLE
        return None

    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        execute(
            connection, SQL("PRAGMA busy_timeout = {}").format(Literal(int(lock_timeout * 1000)))
        )

    bookkeeping_ddl: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {CONFIG} (schema_version INTEGER NOT NULL, "
        "database_name TEXT NOT NULL, excluded TEXT NOT NULL, drifted INTEGER NOT NULL DEFAULT 0, "
        "probe_sql TEXT)",
        f"CREATE TABLE IF NOT EXISTS {TABLES} (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
        "UNIQUE, baseline_rows INTEGER NOT NULL DEFAULT 0, counter INTEGER, reset_sql TEXT, "
        "restore_sql TEXT, counter_sql TEXT, update_sql TEXT, check_sql TEXT, check_names TEXT, "
        "app_triggers INTEGER NOT NULL DEFAULT 0)",
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (tid INTEGER NOT NULL, kind TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS cleandb_dirty_tid ON {DIRTY} (tid, kind)",
        f"CREATE TABLE IF NOT EXISTS {LAYERS} (depth INTEGER NOT NULL, tid INTEGER NOT NULL, "
        "baseline_rows INTEGER NOT NULL DEFAULT 0, counter INTEGER, reset_sql TEXT, "
        "restore_sql TEXT, counter_sql TEXT, update_sql TEXT, PRIMARY KEY (depth, tid))",
    )
    insert_ignore: ClassVar[str] = "INSERT OR IGNORE"

    @contextmanager
    def _layer_transaction(self, connection: Connection) -> Iterator[None]:
        """A push or pop is one transaction, the reset of a pop included (it joins it), with
        foreign keys off as for the reset (the pragma is a no-op inside a transaction)."""
        foreign_keys = execute(connection, "PRAGMA foreign_keys").scalar()
        if foreign_keys:
            execute(connection, "PRAGMA foreign_keys = OFF")
        try:
            execute(connection, "BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                execute(connection, "ROLLBACK")
                raise
            execute(connection, "COMMIT")
        finally:
            if foreign_keys:
                execute(connection, "PRAGMA foreign_keys = ON")

    def install(self, ex: Executor, options: TrackingOptions) -> None:
        # Python's sqlite3 runs DDL outside a transaction unless one is open: a savepoint makes
        # the whole install one (joined to the caller's, if any), so a refused or failed install
        # leaves no object behind.
        connection = self._require_online(ex, "install tracking")
        dbapi = connection.connection.driver_connection
        assert dbapi is not None
        dbapi.execute("SAVEPOINT cleandb_install")
        try:
            super().install(ex, options)
        except BaseException:
            dbapi.execute("ROLLBACK TO cleandb_install")
            dbapi.execute("RELEASE cleandb_install")
            raise
        dbapi.execute("RELEASE cleandb_install")

    def trackable(
        self, connection: Connection, tables: Sequence[str], excluded: set[str]
    ) -> dict[str, bool]:
        """Virtual tables are not tracked themselves (their rows are in their shadow tables);
        shadow tables are, without triggers, unless their virtual table is excluded."""
        virtual = virtual_tables(connection, tables)
        owners = {shadow: vt for vt in virtual for shadow in vt.shadows}
        for name in sorted(excluded & set(owners)):
            vt = owners[name]
            if vt.name not in excluded:
                raise ConfigurationError(
                    f"alembic-cleandb: exclude names {name!r}, but {name!r} is a shadow table "
                    f"of the {vt.module.upper() or 'virtual'} virtual table {vt.name!r}: it "
                    "holds part of that table's rows, which are reset together or not at "
                    f"all. Nothing was changed. Exclude the virtual table instead: "
                    f"exclude=[{vt.name!r}] (its shadow tables go with it)"
                )
        skipped = {vt.name for vt in virtual} | {
            shadow for shadow, vt in owners.items() if vt.name in excluded
        }
        return {
            t: t not in owners
            for t in tables
            if t not in excluded and t not in skipped and not self.own_table(t)
        }

    def after_sync(
        self, ex: Executor, seeded: Sequence[tuple[int, str]], fresh: bool = True
    ) -> None:
        """Store ``probe_sql``: the statement that finds the tracked shadow tables written
        since the baseline, with the columns of the reset's query (see :meth:`resetter`)."""
        connection = ex.connection
        assert connection is not None
        tracked = {
            str(n): (int(i), int(r))
            for n, i, r in execute(connection, f"SELECT name, id, baseline_rows FROM {TABLES}")
        }
        select = (
            "SELECT t.id, t.name, t.reset_sql, t.restore_sql, t.counter_sql, 0, "
            f"t.check_sql IS NOT NULL, t.app_triggers FROM {TABLES} t WHERE "
        )
        probes = []
        for vt in virtual_tables(connection, self.list_tables(connection)):
            members = [(tracked[n][0], n, tracked[n][1]) for n in vt.shadows if n in tracked]
            data = f"{vt.name}_data"
            if vt.module == "fts5" and data in tracked:
                # The records every index write rewrites, as the baseline has them (quote():
                # SQLite's own literal; the probe is stored text, run without parameters).
                data_id, data_rows = tracked[data]
                stored = (
                    {
                        int(i): str(v)
                        for i, v in execute(
                            connection,
                            f"SELECT id, quote(block) FROM {shadow_name(data_id)} WHERE id IN "
                            f"({', '.join(map(str, _FTS5_RECORDS))})",
                        )
                    }
                    if data_rows
                    else {}
                )
                q = quote_name(connection.dialect, data)
                changed = " OR ".join(
                    f"(SELECT block FROM {q} WHERE id = {r}) IS NOT {stored.get(r, 'NULL')}"
                    for r in _FTS5_RECORDS
                )
                ids = ", ".join(str(i) for i, _, _ in members)
                probes.append(f"{select}t.id IN ({ids}) AND ({changed})")
                continue
            for table_id, name, rows in members:
                q = quote_name(connection.dialect, name)
                base = shadow_name(table_id)
                changed = (
                    f"EXISTS (SELECT * FROM {q} EXCEPT SELECT * FROM {base}) OR "
                    f"EXISTS (SELECT * FROM {base} EXCEPT SELECT * FROM {q})"
                    if rows
                    else f"EXISTS (SELECT 1 FROM {q})"
                )
                probes.append(f"{select}t.id = {table_id} AND ({changed})")
        execute(
            connection,
            SQL(f"UPDATE {CONFIG} SET probe_sql = {{}}").format(
                Value(" UNION ALL ".join(probes) or None)
            ),
        )

    def _probed(self, connection: Connection) -> list[str]:
        """The tracked shadow tables written since the baseline (their writes leave no mark)."""
        version = self.installed_version(connection)
        if version is None or version < _PROBES_SINCE:
            return []
        probe = execute(connection, f"SELECT probe_sql FROM {CONFIG}").scalar()
        return [str(row[1]) for row in execute(connection, str(probe))] if probe else []

    def written_unmarked(self, connection: Connection) -> list[int]:
        """A scoped baseline does not cover virtual tables (their shadow tables are found by
        a probe of the baseline's copies, not by marks): a push after a write to one refuses,
        and the layer is not started."""
        written = self._probed(connection)
        if written:
            owners = {
                shadow: vt.name
                for vt in virtual_tables(connection, self.list_tables(connection))
                for shadow in vt.shadows
            }
            names = ", ".join(sorted({repr(owners.get(n, n)) for n in written}))
            raise ConfigurationError(
                f"alembic-cleandb: a scoped baseline cannot include SQLite virtual tables "
                f"(FTS5, FTS3/4, R*Tree): {names} written since the last reset; nothing was "
                "started. Write virtual tables' seed rows in a migration, or before "
                "alembic_cleandb.set_baseline(url) in a session fixture, or exclude them"
            )
        return []

    def dirty_tables(self, connection: Connection) -> list[str]:
        written = self._probed(connection)
        owners = {
            shadow: vt.name
            for vt in virtual_tables(connection, self.list_tables(connection))
            for shadow in vt.shadows
        }
        probed = [owners.get(name, name) for name in written]
        return list(dict.fromkeys([*super().dirty_tables(connection), *probed]))

    def has_marks(self, connection: Connection) -> bool:
        return super().has_marks(connection) or bool(self._probed(connection))

    def list_tables(self, connection: Connection) -> list[str]:
        rows = execute(
            connection,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\' ORDER BY name",
        )
        return [str(r[0]) for r in rows]

    def lock_details(self, exc: BaseException, connection: Connection) -> str:
        return (
            "SQLite locks the whole database file: another connection to it has an open write "
            "transaction (no server to ask which one)"
        )

    def installed_database(self, connection: Connection) -> str | None:
        return None  # a copied file keeps working, as the reset does not check it either

    def current_database(self, connection: Connection) -> str:
        for _, name, path in execute(connection, "PRAGMA database_list"):
            if name == "main":
                # The file's name without directory and extension: /tmp/app_test.db -> app_test
                return os.path.splitext(os.path.basename(path))[0] if path else ":memory:"
        return ":memory:"

    def table_states(self, connection: Connection, names: Sequence[str]) -> list[TableState]:
        # FTS3/FTS4 keep the terms of this transaction's writes in memory until it commits or
        # a savepoint opens: their shadow tables are read (and copied) after that.
        for statement in _FLUSH_VIRTUAL_TABLES:
            execute(connection, statement)
        counters: dict[str, int] = {}
        if "sqlite_sequence" in {
            r[0] for r in execute(connection, "SELECT name FROM sqlite_master")
        }:
            counters = {
                str(n): int(s)
                for n, s in execute(connection, "SELECT name, seq FROM sqlite_sequence")
            }
        states = []
        for name in names:
            q = Identifier(name)
            autoincrement = self._has_autoincrement(connection, name)
            # table_xinfo's "hidden" is 2 or 3 for generated columns.
            columns = tuple(
                str(r[1])
                for r in execute(connection, SQL("PRAGMA table_xinfo({})").format(q))
                if r[6] in (0, 1)
            )
            rows = int(execute(connection, SQL("SELECT COUNT(*) FROM {}").format(q)).scalar_one())
            states.append(
                TableState(
                    name=name,
                    rows=rows,
                    counter=counters.get(name, 0) if autoincrement else None,
                    columns=columns,
                )
            )
        return states

    def change_key(self, connection: Connection, state: TableState) -> tuple[str, ...]:
        found = sorted(
            (int(r[5]), str(r[1]))
            for r in execute(connection, SQL("PRAGMA table_info({})").format(state.name))
            if r[5]
        )
        key = tuple(name for _, name in found)
        return key if set(key) <= set(state.columns) else ()

    def group_column(self, column: str, state: TableState, name: str) -> str:
        return f"{column} COLLATE BINARY"  # a NOCASE column: 'a' -> 'A' is a change

    def application_triggers(self, connection: Connection) -> set[str]:
        return {
            str(t)
            for (t,) in execute(
                connection,
                SQL(
                    "SELECT DISTINCT tbl_name FROM sqlite_master WHERE type = 'trigger' AND "
                    "substr(name, 1, {}) <> {}"
                ).format(Literal(len(PREFIX)), Literal(PREFIX)),
            )
        }

    def foreign_keys(self, connection: Connection) -> list[ForeignKey]:
        found = []
        tables = self.list_tables(connection)
        virtual = {vt.name for vt in virtual_tables(connection, tables)}
        for child in (t for t in tables if t not in virtual):
            keys: dict[int, list[tuple[str, str | None]]] = {}
            rules: dict[int, tuple[str, str]] = {}
            for row in execute(connection, SQL("PRAGMA foreign_key_list({})").format(child)):
                keys.setdefault(int(row[0]), []).append((str(row[3]), row[4]))
                rules[int(row[0])] = (str(row[2]), f"{row[5]} {row[6]}".upper())
            for key, pairs in keys.items():
                parent, actions = rules[key]
                refs = [to for _, to in pairs]
                if any(to is None for to in refs):  # REFERENCES parent: its primary key
                    pk = sorted(
                        (int(r[5]), str(r[1]))
                        for r in execute(connection, SQL("PRAGMA table_info({})").format(parent))
                        if r[5]
                    )
                    refs = [name for _, name in pk]
                found.append(
                    ForeignKey(
                        child,
                        tuple(c for c, _ in pairs),
                        parent,
                        tuple(str(r) for r in refs),
                        any(w in actions for w in ("CASCADE", "SET NULL", "SET DEFAULT")),
                    )
                )
        return found

    @staticmethod
    def _has_autoincrement(connection: Connection, name: str) -> bool:
        sql = execute(
            connection,
            SQL("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = {}").format(
                Value(name)
            ),
        ).scalar()
        return "AUTOINCREMENT" in str(sql or "").upper()

    def trigger_ddl(self, quote_table: str, table_id: int, kind: str, event: str) -> str:
        return (
            f"CREATE TRIGGER IF NOT EXISTS {trigger_name(table_id, kind)} AFTER {event} ON "
            f"{quote_table} BEGIN INSERT INTO {DIRTY} (tid, kind) SELECT {table_id}, '{kind}' "
            f"WHERE NOT EXISTS (SELECT 1 FROM {DIRTY} WHERE tid = {table_id} AND kind = "
            f"'{kind}'); END"
        )

    def statements(
        self, q: str, shadow: str, cols: str, state: TableState
    ) -> tuple[str, str | None, str | None]:
        restore = f"INSERT INTO {q} ({cols}) SELECT {cols} FROM {shadow}" if state.rows else None
        counter_sql = None
        if state.counter is not None:
            # sqlite_sequence rows are keyed by the table's name, passed as a parameter.
            counter_sql = (
                "DELETE FROM sqlite_sequence WHERE name = ?"
                if state.counter == 0
                else f"UPDATE sqlite_sequence SET seq = {int(state.counter)} WHERE name = ?"
            )
        return f"DELETE FROM {q}", restore, counter_sql

    def own_objects(self, connection: Connection) -> list[tuple[str, str]]:
        return [
            (str(kind).upper(), str(name))
            for kind, name in execute(
                connection, "SELECT type, name FROM sqlite_master WHERE sql IS NOT NULL"
            )
            if self.own_table(str(name))
        ]

    def resetter(self, connection: Connection, restart_ids: bool = True) -> Callable[[], int]:
        dbapi = connection.connection.driver_connection
        assert dbapi is not None
        # The marked tables, and the probe of the shadow tables (one row, id NULL) if any.
        find_marked = (
            f"SELECT t.id, t.name, t.reset_sql, t.restore_sql, t.counter_sql, MAX(d.kind = 'i'), "
            f"t.check_sql IS NOT NULL, t.app_triggers "
            f"FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid GROUP BY t.id UNION ALL "
            f"SELECT NULL, probe_sql, NULL, NULL, NULL, NULL, NULL, NULL FROM {CONFIG} "
            "WHERE probe_sql IS NOT NULL"
        )

        def find() -> list[tuple[Any, ...]]:
            found: list[tuple[Any, ...]] = dbapi.execute(find_marked).fetchall()
            probes = [str(row[1]) for row in found if row[0] is None]
            if not probes:
                return found
            marked = {row[0] for row in found if row[0] is not None}
            written = dbapi.execute(probes[0]).fetchall()
            return [row for row in found if row[0] is not None] + [
                row for row in written if row[0] not in marked
            ]

        checks = (
            f"SELECT t.name, t.check_sql, t.check_names FROM {TABLES} t "
            f"WHERE t.check_sql IS NOT NULL AND t.id IN (SELECT tid FROM {DIRTY}) ORDER BY t.id"
        )

        # Resets that keep counting (restart_ids False) leave sqlite_sequence where the tests
        # took it and say so in the configuration row (drifted); the next reset that restarts
        # ids puts every AUTOINCREMENT counter back, dirty or not (one statement per table).
        drift = f"SELECT drifted FROM {CONFIG}"
        counters = f"SELECT name, counter_sql FROM {TABLES} WHERE counter_sql IS NOT NULL"

        def reset() -> int:
            dirty = find()
            drifted = restart_ids and bool((dbapi.execute(drift).fetchone() or (0,))[0])
            if not dirty and not drifted:
                return 0
            # Foreign keys are off for the reset: no row of an untracked table may reference
            # a row it would remove (see ClientSideBackend._relations).
            checked = dbapi.execute(checks).fetchall() if any(row[6] for row in dirty) else []
            for name, check_sql, check_names in checked:
                hit = int(dbapi.execute(check_sql).fetchone()[0])
                if hit:
                    untracked = json.loads(check_names)[hit - 1]
                    raise ResetError(
                        f"alembic-cleandb: a row of untracked table {untracked!r} references "
                        f"a row a test wrote to {name!r}"
                    )
            foreign_keys = dbapi.execute("PRAGMA foreign_keys").fetchone()[0]
            if foreign_keys:
                dbapi.execute("PRAGMA foreign_keys = OFF")
            done: set[int] = set()
            # The application's triggers on the tables the reset writes, dropped for the reset
            # and created again from their own text before it commits (SQLite's DDL is
            # transactional: a failure rolls both back), so that the reset's writes fire none
            # of them - an append-only table whose trigger refuses DELETE resets, and a trigger
            # that stamps inserted rows does not rewrite restored seed rows.
            dropped: list[str] = []
            try:
                # Inside a transaction of the caller's (clean(connection) in a transaction),
                # the reset joins it; otherwise it takes the write lock up front.
                joined = dbapi.in_transaction
                dbapi.execute("SAVEPOINT cleandb_reset" if joined else "BEGIN IMMEDIATE")
                try:
                    for _ in range(MAX_PASSES):
                        written = [str(row[1]) for row in dirty if row[7]]
                        for trigger, sql in (
                            []
                            if not written
                            else dbapi.execute(
                                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND "
                                f"substr(name, 1, {len(PREFIX)}) <> '{PREFIX}' AND tbl_name IN "
                                f"({', '.join('?' for _ in written)})",
                                written,
                            ).fetchall()
                        ):
                            dropped_name = quote_name(connection.dialect, str(trigger))
                            dbapi.execute(f"DROP TRIGGER {dropped_name}")
                            dropped.append(str(sql))
                        for row in dirty:
                            table_id, name, reset_sql, restore_sql, counter_sql, inserted = row[:6]
                            dbapi.execute(reset_sql)
                            if restore_sql:
                                dbapi.execute(restore_sql)
                            if counter_sql and inserted and restart_ids:
                                dbapi.execute(counter_sql, (name,))
                            # its marks, its own statements' included: what is marked from
                            # here on was written by a trigger, and gets the next pass
                            dbapi.execute(f"DELETE FROM {DIRTY} WHERE tid = ?", (table_id,))
                            done.add(table_id)
                        dirty = find()
                        if not dirty:
                            break
                    else:
                        names = ", ".join(sorted(str(row[1]) for row in dirty))
                        raise ResetError(
                            f"alembic-cleandb: triggers keep writing tracked tables ({names}) "
                            f"while the reset restores them, {MAX_PASSES} passes in a "
                            "row; nothing was reset. Make those triggers stop writing when "
                            "nothing changes, or exclude their tables from tracking"
                        )
                    dbapi.execute(f"DELETE FROM {DIRTY}")  # (marks of tables no longer tracked)
                    if not restart_ids:
                        dbapi.execute(f"UPDATE {CONFIG} SET drifted = 1 WHERE drifted = 0")
                    elif drifted:
                        for name, counter_sql in dbapi.execute(counters).fetchall():
                            dbapi.execute(counter_sql, (name,))
                        dbapi.execute(f"UPDATE {CONFIG} SET drifted = 0")
                    for sql in dropped:
                        dbapi.execute(sql)
                except BaseException:
                    if joined:
                        dbapi.execute("ROLLBACK TO cleandb_reset")
                        dbapi.execute("RELEASE cleandb_reset")
                    else:
                        dbapi.execute("ROLLBACK")
                    raise
                dbapi.execute("RELEASE cleandb_reset" if joined else "COMMIT")
            finally:
                if foreign_keys:
                    dbapi.execute("PRAGMA foreign_keys = ON")
            return len(done)

        return reset

    # -- whole test databases -----------------------------------------------------
    version_tables_sql: ClassVar[str] = (
        "SELECT NULL, m.name FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p "
        "WHERE m.type = 'table' AND p.name = 'version_num' ORDER BY 2"
    )

    def path(self, url: URL) -> Path:
        name = url.database
        if not name or name == ":memory:" or name.startswith("file:"):
            raise ConfigurationError(
                f"alembic-cleandb: {safe_url(url)!r} is not a SQLite file: an in-memory "
                "database cannot be shared with the application or copied per pytest-xdist "
                "worker. Use a file, e.g. sqlite:///test.db"
            )
        return Path(name)

    def database(self, url: URL) -> str:
        return str(self.path(url))

    def guard_name(self, url: URL) -> str:
        return self.path(url).stem  # as SQLiteBackend.current_database: app_test.db -> app_test

    def copy_url(self, base: URL, suffix: str) -> URL:
        path = self.path(base)
        return base.set(database=str(path.with_name(f"{path.stem}_{suffix}{path.suffix}")))

    def exists(self, url: URL) -> bool:
        return self.path(url).exists()

    def create_empty(self, url: URL) -> None:
        check_database_name(self.guard_name(url), "create")
        self.path(url).parent.mkdir(parents=True, exist_ok=True)

    def copy(self, base: URL, copy: URL, allowed: str | None = None) -> None:
        source = sqlite3.connect(self.path(base))
        try:
            target = sqlite3.connect(self.path(copy))
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        self.adopt_copy(copy, allowed)

    def drop(self, url: URL) -> None:
        path = self.path(url)
        for extra in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                os.unlink(f"{path}{extra}")
