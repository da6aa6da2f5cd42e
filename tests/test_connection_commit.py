"""``clean()``, ``set_baseline()``, ``sync()`` and ``adopt()`` handed a plain SQLAlchemy 2
``Connection`` (autobegin): with no transaction of the caller's open, the work is committed
when the call returns; inside the caller's transaction it joins it. Every result is read
through ANOTHER connection, after the caller's connection is closed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
import sqlalchemy as sa

import alembic_cleandb
from dbutil import connect, count, execute, insert, q

# The bookkeeping table that records which database tracking belongs to, per backend.
_CONFIG = {
    "postgresql": ("cleandb.config", "database"),
    "mariadb": ("cleandb_config", "database_name"),
    "sqlite": ("cleandb_config", "database_name"),
}


def plain_connection(url: str) -> AbstractContextManager[sa.Connection]:
    """A plain SQLAlchemy 2 connection: no begin(), no commit(), autobegin only."""
    return connect(url, begin=False)


def test_clean_on_a_plain_connection_is_committed(migrated: str) -> None:
    insert(migrated, "user", name="written by a test")
    with plain_connection(migrated) as connection:
        assert alembic_cleandb.clean(connection) == 1
        assert not connection.in_transaction()  # nothing left open for the caller
    assert count(migrated, "user") == 0  # seen through another connection
    assert alembic_cleandb.clean(migrated) == 0  # and the marks went with the rows


def test_clean_after_the_callers_own_reads_still_commits(migrated: str) -> None:
    """The caller's earlier work is committed: no transaction is open, so clean() commits."""
    insert(migrated, "user", name="x")
    with plain_connection(migrated) as connection:
        connection.execute(sa.text("SELECT 1"))
        connection.commit()
        assert alembic_cleandb.clean(connection) == 1
    assert count(migrated, "user") == 0


def test_set_baseline_on_a_plain_connection_is_committed(migrated: str) -> None:
    insert(migrated, "user", name="seed")
    with plain_connection(migrated) as connection:
        alembic_cleandb.set_baseline(connection)
    insert(migrated, "user", name="a test's row")
    assert alembic_cleandb.clean(migrated) == 1
    with connect(migrated) as c:
        names = c.execute(sa.text(f"SELECT name FROM {q(c, 'user')}")).scalars().all()
    assert names == ["seed"]  # the baseline taken through the closed connection holds


def test_sync_on_a_plain_connection_is_committed(migrated: str) -> None:
    execute(migrated, "CREATE TABLE made_outside (id INTEGER PRIMARY KEY, v INTEGER)")
    with plain_connection(migrated) as connection:
        alembic_cleandb.sync(connection)
    execute(migrated, "INSERT INTO made_outside (id, v) VALUES (1, 1)")
    assert alembic_cleandb.clean(migrated) == 1  # tracked: the write is undone
    assert count(migrated, "made_outside") == 0


def test_adopt_on_a_plain_connection_is_committed(backend: str, migrated: str) -> None:
    table, column = _CONFIG[backend]
    execute(migrated, f"UPDATE {table} SET {column} = 'the_base_test_db'")  # as in a copy
    if backend != "sqlite":  # (SQLite does not check: a copied file keeps working)
        with pytest.raises(alembic_cleandb.CleanDBError, match="adopt it first"):
            alembic_cleandb.sync(migrated)
    with plain_connection(migrated) as connection:
        alembic_cleandb.adopt(connection)
    with connect(migrated) as c:
        recorded = c.execute(sa.text(f"SELECT {column} FROM {table}")).scalar_one()
    assert recorded != "the_base_test_db"
    alembic_cleandb.sync(migrated)  # accepted now


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_clean_inside_the_callers_transaction_joins_it(migrated: str) -> None:
    """PostgreSQL and SQLite: the reset is part of the caller's transaction, so the caller's
    rollback undoes it too (MySQL/MariaDB commit in the reset procedure: see the docs). The
    caller writes first: Python's sqlite3 opens SQLite's transaction only at a write."""
    insert(migrated, "user", name="x")
    with plain_connection(migrated) as connection:
        connection.begin()
        connection.execute(sa.text(f"INSERT INTO {q(connection, 'user')} (name) VALUES ('y')"))
        assert alembic_cleandb.clean(connection) == 1
        assert connection.in_transaction()  # left open: the caller decides
        connection.rollback()
    assert count(migrated, "user") == 1  # rolled back with the caller's transaction
    with plain_connection(migrated) as connection, connection.begin():
        assert alembic_cleandb.clean(connection) == 1
    assert count(migrated, "user") == 0  # committed by the caller
