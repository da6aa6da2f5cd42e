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


# -- item 17: the reset's own writes fire none of the application's triggers ------------------


def test_the_reset_fires_no_application_trigger(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)",
        "INSERT INTO audit (what) VALUES ('seeded')",
        "CREATE TRIGGER append_only BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, created_at TEXT)",
        "INSERT INTO item VALUES (1, 'a', '2001-01-01'), (2, 'b', '2001-01-02')",
        "CREATE TRIGGER stamp AFTER INSERT ON item "
        "BEGIN UPDATE item SET created_at = '2099-09-09' WHERE id = NEW.id; END",
    )
    baseline = dump(db_url)
    with connect(db_url) as c:
        triggers = c.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchall()
    for _ in range(2):
        execute(
            db_url,
            "INSERT INTO audit (what) VALUES ('by the test')",
            "DELETE FROM item WHERE id = 1",
            "UPDATE item SET name = 'changed' WHERE id = 2",
        )
        assert alembic_cleandb.clean(db_url) == 2
        assert dump(db_url) == baseline
        assert marked(db_url) == set()
    with connect(db_url) as c:  # the application's triggers are back, exactly
        assert (
            c.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            ).fetchall()
            == triggers
        )
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        execute(db_url, "DELETE FROM audit")


def test_triggers_that_write_each_other_settle_in_one_pass(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE ping (v INTEGER)",
        "CREATE TABLE pong (v INTEGER)",
        "INSERT INTO ping (v) VALUES (1)",
        "INSERT INTO pong (v) VALUES (1)",
        "CREATE TRIGGER ping_ins AFTER INSERT ON ping BEGIN UPDATE pong SET v = v + 1; END",
        "CREATE TRIGGER pong_del AFTER DELETE ON pong BEGIN UPDATE ping SET v = v + 1; END",
    )
    execute(db_url, "UPDATE ping SET v = 5")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == {"ping": [(1,)], "pong": [(1,)]}
