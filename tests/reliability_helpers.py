"""Helpers shared by the reliability tests (test_reliability_*.py, test_properties.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import alembic_cleandb
from alembic_cleandb import Cleaner
from alembic_cleandb._connect import normalize_url
from alembic_cleandb.backends import backend_for

#: How long a helper waits for something another thread or process must do (a hang guard,
#: never an assertion on speed).
PATIENCE = 60.0

#: Every public entry point that opens a database by URL (or connection), by name.
ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "Cleaner": lambda target: Cleaner(target).close(),
    "clean": alembic_cleandb.clean,
    "set_baseline": alembic_cleandb.set_baseline,
    "sync": alembic_cleandb.sync,
    "adopt": alembic_cleandb.adopt,
}
entry_points = pytest.mark.parametrize("call", list(ENTRY_POINTS))


def engine(url: str, **kw: Any) -> sa.Engine:
    return sa.create_engine(normalize_url(url), poolclass=NullPool, **kw)


@contextmanager
def connection(url: str, **kw: Any) -> Iterator[sa.Connection]:
    """A plain (non-autocommit) connection; the caller commits or rolls back."""
    e = engine(url, **kw)
    try:
        with e.connect() as c:
            yield c
    finally:
        e.dispose()


def q(c: sa.Connection | sa.Engine, name: str) -> str:
    return c.dialect.identifier_preparer.quote(name)


def backend_of(url: str) -> str:
    name = sa.make_url(url).get_backend_name()
    return "mariadb" if name in ("mysql", "mariadb") else name


def marks(url: str) -> set[str]:
    """The names of the tables marked dirty now (via the backend's own listing)."""
    with engine(url, isolation_level="AUTOCOMMIT").connect() as c:
        backend = backend_for(c.dialect.name)
        return set(backend.dirty_tables(c))


def counters(c: sa.Connection) -> dict[str, Any]:
    """Every sequence / AUTO_INCREMENT position of the user tables, read without moving it."""
    kind = c.dialect.name
    if kind == "postgresql":
        out: dict[str, Any] = {}
        for schema, name in c.exec_driver_sql(
            "SELECT n.nspname, s.relname FROM pg_class s JOIN pg_namespace n "
            "ON n.oid = s.relnamespace WHERE s.relkind = 'S' AND n.nspname <> 'cleandb' "
            "ORDER BY 1, 2"
        ):
            value = c.exec_driver_sql(
                f"SELECT last_value, is_called FROM {q(c, schema)}.{q(c, name)}"
            ).one()
            out[f"{schema}.{name}"] = tuple(value)
        return out
    if kind in ("mysql", "mariadb"):
        return {
            str(n): v
            for n, v in c.exec_driver_sql(
                "SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME NOT LIKE 'cleandb%%' "
                "AND TABLE_TYPE = 'BASE TABLE'"
            )
        }
    has = c.exec_driver_sql(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"
    ).scalar()
    if not has:
        return {}
    return {
        str(n): s
        for n, s in c.exec_driver_sql(
            "SELECT name, seq FROM sqlite_sequence WHERE name NOT LIKE 'cleandb%'"
        )
    }


def user_tables(c: sa.Connection) -> list[tuple[str | None, str]]:
    inspector = sa.inspect(c)
    schemas: list[str | None] = [None]
    if c.dialect.name == "postgresql":
        schemas.append("billing")
    out = []
    for schema in schemas:
        for name in inspector.get_table_names(schema=schema):
            if not name.startswith("cleandb") and name != "alembic_version":
                out.append((schema, name))
    return sorted(out, key=lambda t: (t[0] or "", t[1]))


def full_dump(url: str) -> dict[str, Any]:
    """Every row of every user table, and every counter position: the state a reset restores."""
    with engine(url).connect() as c:
        out: dict[str, Any] = {}
        for schema, name in user_tables(c):
            ref = q(c, name) if schema is None else f"{q(c, schema)}.{q(c, name)}"
            rows = c.exec_driver_sql(f"SELECT * FROM {ref}").fetchall()
            out[f"{schema or ''}.{name}"] = sorted(tuple(map(repr, r)) for r in rows)
        out["<counters>"] = counters(c)
        c.rollback()
        return out


def wait_for(what: str, probe: Callable[[], Any], patience: float = PATIENCE) -> Any:
    """Poll ``probe`` until it returns something truthy; fail (never hang) after ``patience``."""
    deadline = time.monotonic() + patience
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)
