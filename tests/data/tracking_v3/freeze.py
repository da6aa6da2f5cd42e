"""Freeze the tracking objects that schema version 3 of alembic-cleandb created, for
test_upgrade.py: the library's last commit with SCHEMA_VERSION = 3 is cc09d18^.

    git archive cc09d18^ src | tar -x -C /tmp/v3
    PYTHONPATH=/tmp/v3/src python tests/data/tracking_v3/freeze.py

For each backend it migrates a fresh database with tests/migrations (no tracking), installs
tracking with that old code, and writes what the old install created: PostgreSQL, its install
statements (plpgsql discovers the tables when they run); MariaDB and SQLite, every object
whose name starts with ``cleandb_`` with the rows of the tables among them.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mariadb+pymysql://root@127.0.0.1:3306/",
}
NAME = "layout_test_freeze_v3"
DEFINER = re.compile(r"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`\s*")


def migrate(url: str) -> None:
    config = Config(str(ROOT / "alembic.ini"), ini_section="alembic")
    config.attributes["url"] = url
    command.upgrade(config, "heads")


def install(url: str) -> None:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        Operations(MigrationContext.configure(connection)).install_clean_tracking()
    engine.dispose()


def rows(connection: sa.Connection, q: Any, table: str) -> dict[str, Any]:
    result = connection.exec_driver_sql(f"SELECT * FROM {q(table)}")
    return {"columns": list(result.keys()), "rows": [list(r) for r in result]}


def dump_mariadb(connection: sa.Connection) -> dict[str, Any]:
    q = connection.dialect.identifier_preparer.quote
    ddl, data = [], {}
    objects = connection.exec_driver_sql(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
    ).fetchall()
    for name, kind in objects:
        if not name.startswith("cleandb_"):
            continue
        if kind == "SEQUENCE":
            ddl.append(connection.exec_driver_sql(f"SHOW CREATE SEQUENCE {q(name)}").one()[1])
        else:
            ddl.append(connection.exec_driver_sql(f"SHOW CREATE TABLE {q(name)}").one()[1])
            data[name] = rows(connection, q, name)
    for (name,) in connection.exec_driver_sql(
        "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() "
        "AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY ROUTINE_NAME"
    ):
        row = connection.exec_driver_sql(f"SHOW CREATE PROCEDURE {q(name)}").one()
        ddl.append(DEFINER.sub("", row[2]))
    for (name,) in connection.exec_driver_sql(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() "
        "ORDER BY TRIGGER_NAME"
    ):
        row = connection.exec_driver_sql(f"SHOW CREATE TRIGGER {q(name)}").one()
        ddl.append(DEFINER.sub("", row[2]))
    return {"ddl": ddl, "rows": data}


def dump_sqlite(connection: sa.Connection) -> dict[str, Any]:
    q = connection.dialect.identifier_preparer.quote
    ddl, data = [], {}
    order = {"table": 0, "index": 1, "trigger": 2}
    objects = connection.exec_driver_sql(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
    ).fetchall()
    for kind, name, sql in sorted(objects, key=lambda o: (order.get(o[0], 3), o[1])):
        if not name.startswith("cleandb_"):
            continue
        ddl.append(sql)
        if kind == "table":
            data[name] = rows(connection, q, name)
    return {"ddl": ddl, "rows": data}


def main() -> None:
    from alembic_cleandb._base import TrackingOptions

    from alembic_cleandb import SCHEMA_VERSION, postgresql

    if SCHEMA_VERSION != 3:
        sys.exit(f"run with the library of schema version 3 on PYTHONPATH, not {SCHEMA_VERSION}")
    out: dict[str, Any] = {
        "postgresql": {"statements": postgresql.install_statements(TrackingOptions())}
    }
    for backend, server in SERVERS.items():
        if backend == "postgresql":
            continue
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}")
            c.exec_driver_sql(f"CREATE DATABASE {NAME}")
        url = admin.url.set(database=NAME).render_as_string(hide_password=False)
        try:
            migrate(url)
            install(url)
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                out[backend] = dump_mariadb(connection)
            engine.dispose()
        finally:
            with admin.connect() as c:
                c.exec_driver_sql(f"DROP DATABASE IF EXISTS {NAME}")
            admin.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/{NAME}.db"
        migrate(url)
        install(url)
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            out["sqlite"] = dump_sqlite(connection)
        engine.dispose()
    for backend, frozen in out.items():
        frozen["schema_version"] = SCHEMA_VERSION
        frozen["library"] = alembic_cleandb.__version__
        path = HERE / f"{backend}.json"
        path.write_text(json.dumps(frozen, indent=1) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
