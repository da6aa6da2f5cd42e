"""pytest-clean-database 1.0.0, driven directly.

It is installed into its own venv (bench/.venv-peer) because it registers an autouse pytest
plugin that breaks every other pytest run ("fixture 'clean_db_urls' not found"). The
reset benchmark loads its pure-Python modules *by path* from that venv (no pytest import
needed) and calls the same functions its fixtures call:

- session start: ``dialect.postgres.setup_tracing("public", conn)`` /
  ``dialect.mysql.setup_tracing(conn)``
- after every test: ``run_clean_tables(...)``

On MariaDB its ``clean_tables()`` TRUNCATEs FK-referenced tables, which fails with error
1701 unless ``foreign_key_checks`` is off: we turn it off on its session so that it
completes at all (reported in the output). Its objects are never dropped by the peer
itself; ``drop_tracking`` here removes them between suite runs.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PEER_VENV = os.path.join(BENCH_DIR, ".venv-peer")
PEER_REQ = "pytest-clean-database[psql,mysql]==1.0.0"
PEER_VERSION = "1.0.0"
PLUGIN_MODULE = "pytest_clean_db.plugin"  # its pytest11 entry point (name "clean-db")
MARIADB_NOTE = "pytest-clean-database on MariaDB: run with foreign_key_checks=0 on its session"


def venv_python() -> str:
    return os.path.join(PEER_VENV, "bin", "python")


def _package_dir() -> str | None:
    hits = glob.glob(os.path.join(PEER_VENV, "lib", "python*", "site-packages", "pytest_clean_db"))
    return hits[0] if hits else None


def installed_version() -> str | None:
    hits = glob.glob(
        os.path.join(
            PEER_VENV, "lib", "python*", "site-packages", "pytest_clean_database-*.dist-info"
        )
    )
    if not hits:
        return None
    return os.path.basename(hits[0])[len("pytest_clean_database-") : -len(".dist-info")]


def ensure_venv(log: Any = print) -> str | None:
    """Create bench/.venv-peer with the peer if missing. Returns a reason string on failure."""
    if installed_version() == PEER_VERSION and os.path.exists(venv_python()):
        return None
    log(f"setting up {PEER_VENV} (pytest-clean-database {PEER_VERSION}) ...")
    try:
        if not os.path.exists(venv_python()):
            subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
        pkgs = [PEER_REQ]
        try:  # same psycopg build as the main venv, so the drivers match
            import psycopg

            pkgs.append("psycopg[binary]==" + psycopg.__version__)
        except Exception:
            pkgs.append("psycopg[binary]")
        subprocess.run(
            [venv_python(), "-m", "pip", "install", "-q", *pkgs],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except Exception as exc:
        return f"could not set up {PEER_VENV}: {exc}"
    if installed_version() != PEER_VERSION:
        return f"pytest-clean-database {PEER_VERSION} not found in {PEER_VENV}"
    return None


_mods: dict[str, ModuleType] = {}


def load() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(connection, dialect.postgres, dialect.mysql) modules of the peer, imported by path."""
    if not _mods:
        pkg_dir = _package_dir()
        if pkg_dir is None:
            raise RuntimeError("pytest-clean-database not installed in " + PEER_VENV)
        spec = importlib.util.spec_from_file_location(
            "pytest_clean_db",
            os.path.join(pkg_dir, "__init__.py"),
            submodule_search_locations=[pkg_dir],
        )
        assert spec is not None and spec.loader is not None
        pkg = importlib.util.module_from_spec(spec)
        sys.modules["pytest_clean_db"] = pkg
        spec.loader.exec_module(pkg)
        _mods["connection"] = importlib.import_module("pytest_clean_db.connection")
        _mods["postgres"] = importlib.import_module("pytest_clean_db.dialect.postgres")
        _mods["mysql"] = importlib.import_module("pytest_clean_db.dialect.mysql")
    return _mods["connection"], _mods["postgres"], _mods["mysql"]


class Peer:
    """One database tracked by the peer, with its own connection (as its fixture has)."""

    def __init__(self, backend_name: str, dsn: str) -> None:
        connection, self._pg, self._my = load()
        self.backend_name = backend_name
        self.conn = connection.create_connection(dsn)
        if backend_name == "mariadb":
            self.conn.execute("SET SESSION foreign_key_checks = 0")

    def setup(self) -> None:
        if self.backend_name == "postgresql":
            self._pg.setup_tracing("public", self.conn)
        else:
            self._my.setup_tracing(self.conn)

    def reset(self) -> None:
        if self.backend_name == "postgresql":
            self._pg.run_clean_tables("public", self.conn)
        else:
            self._my.run_clean_tables(self.conn)

    def close(self) -> None:
        self.conn.close()


def drop_tracking(backend: Any, dbapi_conn: Any, tables: list[str]) -> None:
    """Remove the peer's objects (it never does) so its session setup can run again."""
    cur = dbapi_conn.cursor()
    if backend.name == "postgresql":
        for s in (
            "DROP FUNCTION IF EXISTS mark_dirty() CASCADE",
            "DROP FUNCTION IF EXISTS clean_tables()",
            "DROP TABLE IF EXISTS __dirty_tables",
        ):
            cur.execute(s)
    else:
        for t in tables:
            cur.execute("DROP TRIGGER IF EXISTS " + backend.q("mark_dirty_" + t))
        for s in (
            "DROP PROCEDURE IF EXISTS mark_dirty",
            "DROP PROCEDURE IF EXISTS clean_tables",
            "DROP TABLE IF EXISTS __dirty_tables",
        ):
            cur.execute(s)
    cur.close()
