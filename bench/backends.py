"""Database backends for the benchmark: create/drop scratch databases, connect, build SQL.

Every database this module creates or drops must be named ``cleandb_bench_test...``;
anything else is refused, so the benchmark never touches another database on the server.
Identifiers are always quoted by the SQLAlchemy dialect's ``identifier_preparer``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

DB_PREFIX = "cleandb_bench_test"

DEFAULT_URLS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/mysql",
    "sqlite": "sqlite://",
}


def check_name(db: str) -> str:
    if not db.startswith(DB_PREFIX) or "test" not in db:
        raise ValueError(
            f"refusing to touch database {db!r}: benchmark databases must start with {DB_PREFIX!r}"
        )
    return db


@dataclass
class Backend:
    """One server (or SQLite directory). ``name`` is postgresql, mariadb or sqlite."""

    name: str
    admin_url: URL
    sqlite_dir: str = ""
    _engines: dict[str, sa.Engine] = field(default_factory=dict)

    # ---------------------------------------------------------------- basics
    @classmethod
    def create(cls, name: str, url: str | None = None) -> Backend:
        admin = make_url(url or DEFAULT_URLS[name])
        b = cls(name=name, admin_url=admin)
        if name == "sqlite":
            b.sqlite_dir = tempfile.mkdtemp(prefix=DB_PREFIX + "_")
        return b

    @property
    def dialect(self) -> sa.Dialect:
        return self.engine_for_dialect().dialect

    def engine_for_dialect(self) -> sa.Engine:
        key = "__dialect__"
        if key not in self._engines:
            self._engines[key] = sa.create_engine(self.sa_url(DB_PREFIX + "_dialect"))
        return self._engines[key]

    def q(self, name: str) -> str:
        """Quote an identifier through the dialect."""
        return self.dialect.identifier_preparer.quote(name)

    @property
    def unprepared(self) -> dict[str, Any]:
        """``cursor.execute`` keywords that keep a statement from being prepared on the server
        (psycopg prepares a statement after its 5th execution on a connection)."""
        return {"prepare": False} if self.name == "postgresql" else {}

    @property
    def param(self) -> str:
        return "?" if self.name == "sqlite" else "%s"

    def sa_url(self, db: str) -> URL:
        check_name(db)
        if self.name == "sqlite":
            return URL.create("sqlite", database=self.sqlite_path(db))
        return self.admin_url.set(database=db)

    def sqlite_path(self, db: str) -> str:
        return os.path.join(self.sqlite_dir, check_name(db) + ".sqlite")

    def engine(self, db: str) -> sa.Engine:
        if db not in self._engines:
            self._engines[db] = sa.create_engine(self.sa_url(db), poolclass=sa.NullPool)
        return self._engines[db]

    def peer_dsn(self, db: str) -> str:
        """The DSN form pytest-clean-database accepts (postgresql:// or mysql:// with password)."""
        u = self.sa_url(db)
        if self.name == "postgresql":
            return u.set(drivername="postgresql").render_as_string(hide_password=False)
        if self.name == "mariadb":
            # its parser requires host, port, user *and* password (an empty one renders "root:@")
            return u.set(
                drivername="mysql", password=u.password or "", port=u.port or 3306
            ).render_as_string(hide_password=False)
        raise ValueError("pytest-clean-database supports PostgreSQL and MySQL only")

    # ------------------------------------------------------- database admin
    def create_database(self, db: str) -> None:
        check_name(db)
        self.drop_database(db)
        if self.name == "sqlite":
            sqlite3.connect(self.sqlite_path(db)).close()
            return
        self._admin_exec("CREATE DATABASE " + self.q(db))

    def settle(self, dbs: Sequence[str]) -> None:
        """Let the server finish the work that creating hundreds of tables leaves behind,
        before anything is timed: on PostgreSQL autovacuum would otherwise visit every new
        table during the first cells (VACUUM ANALYZE now, then a CHECKPOINT)."""
        if self.name != "postgresql":
            return
        for db in dbs:
            conn = self.connect(db)
            try:
                conn.execute("VACUUM ANALYZE")
                conn.execute("CHECKPOINT")
            finally:
                conn.close()

    def drop_database(self, db: str) -> None:
        check_name(db)
        eng = self._engines.pop(db, None)
        if eng is not None:
            eng.dispose()
        if self.name == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                p = self.sqlite_path(db) + suffix
                if os.path.exists(p):
                    os.remove(p)
            return
        if self.name == "postgresql":
            self._admin_exec("DROP DATABASE IF EXISTS " + self.q(db) + " WITH (FORCE)")
        else:
            self._admin_exec("DROP DATABASE IF EXISTS " + self.q(db))

    def _admin_exec(self, stmt: str) -> None:
        conn = self._connect_url(self.admin_url, autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute(stmt)
            cur.close()
        finally:
            conn.close()

    def set_file_per_table(self, on: bool) -> bool:
        """MariaDB: set the server-wide ``innodb_file_per_table`` (read when a table is
        created; a table keeps its tablespace through TRUNCATE); returns the previous value."""
        conn = self._connect_url(self.admin_url, autocommit=True)
        try:
            cur = conn.cursor()
            cur.execute("SELECT @@GLOBAL.innodb_file_per_table")
            old = bool(cur.fetchone()[0])
            cur.execute("SET GLOBAL innodb_file_per_table = %s" % ("ON" if on else "OFF"))
            cur.close()
            return old
        finally:
            conn.close()

    def server_info(self) -> dict[str, Any]:
        if self.name == "sqlite":
            return {"version": sqlite3.sqlite_version}
        conn = self._connect_url(self.admin_url, autocommit=True)
        info: dict[str, Any] = {}
        try:
            cur = conn.cursor()
            if self.name == "postgresql":
                for setting in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                    cur.execute("SELECT current_setting(%s)", (setting,))
                    info[setting] = cur.fetchone()[0]
            else:
                cur.execute("SELECT VERSION()")
                info["version"] = cur.fetchone()[0]
                cur.execute(
                    "SELECT @@innodb_flush_log_at_trx_commit, @@innodb_buffer_pool_size, "
                    "@@log_bin, @@innodb_file_per_table"
                )
                row = cur.fetchone()
                info["innodb_flush_log_at_trx_commit"] = row[0]
                info["innodb_buffer_pool_size"] = row[1]
                info["log_bin"] = row[2]
                info["innodb_file_per_table"] = row[3]
        finally:
            conn.close()
        return info

    # -------------------------------------------------------------- DBAPI
    def connect(self, db: str, autocommit: bool = True) -> Any:
        """A raw DBAPI connection (psycopg 3 / PyMySQL / sqlite3)."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.sqlite_path(db), isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            if not autocommit:
                conn.isolation_level = "DEFERRED"
            return conn
        return self._connect_url(self.sa_url(db), autocommit=autocommit)

    def _connect_url(self, url: URL, autocommit: bool) -> Any:
        if self.name == "postgresql":
            import psycopg

            return psycopg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username or "postgres",
                password=url.password or None,
                dbname=url.database or "postgres",
                autocommit=autocommit,
            )
        import pymysql
        from pymysql.constants import CLIENT

        return pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            autocommit=autocommit,
            client_flag=CLIENT.MULTI_STATEMENTS,
        )

    # ------------------------------------------------------ SQL builders
    def insert_sql(self, table: str, rows: int) -> str:
        """INSERT of ``rows`` rows into (label, val); values go as parameters."""
        one = "(" + self.param + ", " + self.param + ")"
        return "INSERT INTO " + self.q(table) + " (label, val) VALUES " + ", ".join([one] * rows)

    def truncate_all_sql(self, tables: Sequence[str]) -> list[str]:
        """Statements that empty every table and restart the id counters.

        PostgreSQL: one ``TRUNCATE a, b, ... RESTART IDENTITY CASCADE``.
        MariaDB: TRUNCATE has one table per statement and refuses FK-referenced tables, so
        one multi-statement batch with ``foreign_key_checks`` off.
        SQLite: no TRUNCATE; DELETE (its truncate optimisation) plus sqlite_sequence.
        """
        if self.name == "postgresql":
            return [
                "TRUNCATE " + ", ".join(self.q(t) for t in tables) + " RESTART IDENTITY CASCADE"
            ]
        if self.name == "mariadb":
            body = "; ".join("TRUNCATE TABLE " + self.q(t) for t in tables)
            return ["SET foreign_key_checks = 0; " + body + "; SET foreign_key_checks = 1"]
        stmts = ["BEGIN"]
        stmts += ["DELETE FROM " + self.q(t) for t in reversed(tables)]
        stmts += ["DELETE FROM sqlite_sequence", "COMMIT"]
        return stmts

    def delete_all_sql(self, tables: Sequence[str]) -> list[str]:
        """DELETE every table (children first), one transaction; id counters not reset."""
        dels = ["DELETE FROM " + self.q(t) for t in reversed(tables)]
        if self.name == "sqlite":
            return ["BEGIN", *dels, "COMMIT"]
        return ["BEGIN; " + "; ".join(dels) + "; COMMIT"]

    def run_batch(self, conn: Any, stmts: Sequence[str]) -> None:
        """Execute statements, draining every result set (multi-statement on MariaDB)."""
        cur = conn.cursor()
        try:
            for s in stmts:
                cur.execute(s)
                if self.name == "mariadb":
                    while cur.nextset():
                        pass
        finally:
            cur.close()

    def dispose(self) -> None:
        for eng in self._engines.values():
            eng.dispose()
        self._engines.clear()
        if self.sqlite_dir and os.path.isdir(self.sqlite_dir):
            for f in os.listdir(self.sqlite_dir):
                os.remove(os.path.join(self.sqlite_dir, f))
            os.rmdir(self.sqlite_dir)
