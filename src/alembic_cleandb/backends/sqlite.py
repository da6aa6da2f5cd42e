"""SQLite: every statement alembic-cleandb sends to SQLite lives here.

SQLite has no routines, so the reset is done by the library: one query finds the dirty
tables (nothing more happens when none is), then one transaction deletes their rows, copies
the baselines back and restores ``sqlite_sequence`` - and does it again for any table that an
application's trigger wrote to meanwhile. The reset connection turns foreign keys
off for that transaction, so neither their order nor ``ON DELETE CASCADE`` matters.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import ClassVar

from sqlalchemy.engine import URL, Connection

from .._connect import safe_url
from .._guard import check_database_name
from ..errors import ConfigurationError, ResetError
from ._clientside import (
    CONFIG,
    DIRTY,
    MAX_PASSES,
    TABLES,
    ClientSideBackend,
    TableState,
    trigger_name,
)


class SQLiteBackend(ClientSideBackend):
    names: ClassVar[tuple[str, ...]] = ("sqlite",)
    missing_table_markers = ("no such table",)
    lock_timeout_markers = ("database is locked",)

    def configure_session(self, connection: Connection, lock_timeout: float) -> None:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}")

    bookkeeping_ddl: ClassVar[tuple[str, ...]] = (
        f"CREATE TABLE IF NOT EXISTS {CONFIG} (schema_version INTEGER NOT NULL, "
        "database_name TEXT NOT NULL, excluded TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {TABLES} (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
        "UNIQUE, baseline_rows INTEGER NOT NULL DEFAULT 0, counter INTEGER, reset_sql TEXT, "
        "restore_sql TEXT, counter_sql TEXT)",
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (tid INTEGER NOT NULL, kind TEXT NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS cleandb_dirty_tid ON {DIRTY} (tid, kind)",
    )

    def list_tables(self, connection: Connection) -> list[str]:
        rows = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\' ORDER BY name"
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
        for _, name, path in connection.exec_driver_sql("PRAGMA database_list"):
            if name == "main":
                # The file's name without directory and extension: /tmp/app_test.db -> app_test
                return os.path.splitext(os.path.basename(path))[0] if path else ":memory:"
        return ":memory:"

    def table_states(self, connection: Connection, names: Sequence[str]) -> list[TableState]:
        counters: dict[str, int] = {}
        if "sqlite_sequence" in {
            r[0] for r in connection.exec_driver_sql("SELECT name FROM sqlite_master")
        }:
            counters = {
                str(n): int(s)
                for n, s in connection.exec_driver_sql("SELECT name, seq FROM sqlite_sequence")
            }
        states = []
        for name in names:
            q = self._q(connection, name)
            autoincrement = self._has_autoincrement(connection, name)
            # table_xinfo's "hidden" is 2 or 3 for generated columns.
            columns = tuple(
                str(r[1])
                for r in connection.exec_driver_sql(f"PRAGMA table_xinfo({q})")
                if r[6] in (0, 1)
            )
            rows = int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {q}").scalar_one())
            states.append(
                TableState(
                    name=name,
                    rows=rows,
                    counter=counters.get(name, 0) if autoincrement else None,
                    columns=columns,
                )
            )
        return states

    @staticmethod
    def _has_autoincrement(connection: Connection, name: str) -> bool:
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
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
            for kind, name in connection.exec_driver_sql(
                "SELECT type, name FROM sqlite_master WHERE sql IS NOT NULL"
            )
            if self.own_table(str(name))
        ]

    def resetter(self, connection: Connection) -> Callable[[], int]:
        dbapi = connection.connection.driver_connection
        assert dbapi is not None
        find = (
            f"SELECT t.id, t.name, t.reset_sql, t.restore_sql, t.counter_sql, MAX(d.kind = 'i') "
            f"FROM {DIRTY} d JOIN {TABLES} t ON t.id = d.tid GROUP BY t.id"
        )

        def reset() -> int:
            dirty = dbapi.execute(find).fetchall()
            if not dirty:
                return 0
            foreign_keys = dbapi.execute("PRAGMA foreign_keys").fetchone()[0]
            if foreign_keys:
                dbapi.execute("PRAGMA foreign_keys = OFF")
            done: set[int] = set()
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                try:
                    for _ in range(MAX_PASSES):
                        for table_id, name, reset_sql, restore_sql, counter_sql, inserted in dirty:
                            dbapi.execute(reset_sql)
                            if restore_sql:
                                dbapi.execute(restore_sql)
                            if counter_sql and inserted:
                                dbapi.execute(counter_sql, (name,))
                            # its marks, its own statements' included: what is marked from
                            # here on was written by a trigger, and gets the next pass
                            dbapi.execute(f"DELETE FROM {DIRTY} WHERE tid = ?", (table_id,))
                            done.add(table_id)
                        dirty = dbapi.execute(find).fetchall()
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
                except BaseException:
                    dbapi.execute("ROLLBACK")
                    raise
                dbapi.execute("COMMIT")
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
