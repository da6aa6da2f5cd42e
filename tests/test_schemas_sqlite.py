"""Real-world SQLite schemas (issue 12): features a production migration history contains,
each reset exactly or refused with a clear error."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from alembic_cleandb import ResetError
from dbutil import connect, dump, execute

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def track(url: str, *ddl: str, exclude: Sequence[str] = ()) -> None:
    """Run the schema's DDL and seed statements, then install tracking (their baseline)."""
    with connect(url) as c:
        for statement in ddl:
            c.exec_driver_sql(statement)
    with connect(url) as c:
        Operations(MigrationContext.configure(c)).install_clean_tracking(exclude=list(exclude))


def marked(url: str) -> set[str]:
    with connect(url) as c:
        return {
            str(n)
            for (n,) in c.execute(
                sa.text(
                    "SELECT DISTINCT t.name FROM cleandb_dirty d "
                    "JOIN cleandb_tables t ON t.id = d.tid"
                )
            )
        }


# -- item 14: a row of an untracked table references a row a test wrote -----------------------

UNTRACKED = (
    'CREATE TABLE "Order" (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT)',
    "CREATE TABLE empty_parent (id INTEGER PRIMARY KEY AUTOINCREMENT)",
    'CREATE TABLE audit (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES "Order", '
    "parent_id INTEGER REFERENCES empty_parent (id))",
    "INSERT INTO \"Order\" (id, label) VALUES (1, 'seed')",
    "INSERT INTO audit (order_id) VALUES (1)",
)


def test_a_reference_from_an_untracked_table_to_a_written_row_refuses(db_url: str) -> None:
    track(db_url, *UNTRACKED, exclude=["audit"])
    baseline = dump(db_url)
    execute(db_url, "UPDATE \"Order\" SET label = 'changed' WHERE id = 1")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (1)")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url, ["Order"]) == {"Order": baseline["Order"]}
    execute(db_url, "DELETE FROM audit WHERE id > 1")
    execute(db_url, "INSERT INTO \"Order\" (id, label) VALUES (2, 'new')")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (2)")
    with pytest.raises(
        ResetError,
        match=r"untracked table 'audit' references a row a test wrote to 'Order'"
        r".*dangling reference.*marks are kept",
    ):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"Order"}
    assert dump(db_url, ["Order"])["Order"] == [(1, "seed"), (2, "new")]
    execute(db_url, "DELETE FROM audit WHERE order_id = 2")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
    execute(db_url, "INSERT INTO empty_parent DEFAULT VALUES")
    execute(db_url, "INSERT INTO audit (parent_id) VALUES (1)")
    with pytest.raises(ResetError, match="'audit' references a row a test wrote to 'empty_parent'"):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"empty_parent"}
    execute(db_url, "DELETE FROM audit WHERE parent_id = 1")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
