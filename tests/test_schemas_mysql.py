"""Real-world MySQL/MariaDB schemas (issue 12): features a production migration history
contains, each reset exactly or refused with a clear error."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from alembic_cleandb import ResetError
from alembic_cleandb.backends import mysql
from conftest import Databases
from dbutil import connect, dump, execute

MARIADB = pytest.mark.parametrize("backend", ["mariadb"], indirect=True)


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


# -- item 9: cascading foreign-key actions ----------------------------------------------------

CASCADES = (
    "CREATE TABLE parent (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE)",
    "CREATE TABLE child (id INT AUTO_INCREMENT PRIMARY KEY, parent_id INT, "
    "FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)",
    "CREATE TABLE grandchild (id INT PRIMARY KEY, child_id INT, "
    "FOREIGN KEY (child_id) REFERENCES child (id) ON DELETE SET NULL)",
    "CREATE TABLE by_code (id INT PRIMARY KEY, parent_code VARCHAR(10), "
    "FOREIGN KEY (parent_code) REFERENCES parent (code) ON UPDATE CASCADE)",
    "CREATE TABLE unrelated (id INT PRIMARY KEY)",
    "INSERT INTO parent (id, code) VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO child (id, parent_id) VALUES (10, 1), (20, 2)",
    "INSERT INTO grandchild (id, child_id) VALUES (100, 10), (200, 20)",
    "INSERT INTO by_code (id, parent_code) VALUES (7, 'b')",
    "INSERT INTO unrelated (id) VALUES (1)",
)


@MARIADB
def test_rows_changed_by_cascading_foreign_keys_are_restored(db_url: str) -> None:
    track(db_url, *CASCADES)
    baseline = dump(db_url)
    # ON DELETE CASCADE (child 10), then ON DELETE SET NULL (grandchild 100) - no trigger fires
    execute(db_url, "DELETE FROM parent WHERE id = 1")
    # ON UPDATE CASCADE (by_code 7)
    execute(db_url, "UPDATE parent SET code = 'z' WHERE id = 2")
    after = dump(db_url)
    assert after["child"] == [(20, 2)] and after["grandchild"] == [(100, None), (200, 20)]
    assert after["by_code"] == [(7, "z")]
    assert alembic_cleandb.clean(db_url) == 4
    assert dump(db_url) == baseline
    assert marked(db_url) == set()
    # the tables nothing could reach are not touched: an insert only marks its own table
    execute(db_url, "INSERT INTO parent (code) VALUES ('c')")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline


@MARIADB
def test_the_cascade_closure_is_taken_again_at_every_sync(db_url: str) -> None:
    track(db_url, *CASCADES[:2], "INSERT INTO parent (id, code) VALUES (1, 'a')")
    # a later schema change adds a cascading child; the next sync takes the closure again
    with connect(db_url) as c:
        c.exec_driver_sql(
            "CREATE TABLE late (id INT PRIMARY KEY, parent_id INT, "
            "FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)"
        )
        c.exec_driver_sql("INSERT INTO late VALUES (1, 1)")
    alembic_cleandb.set_baseline(db_url)
    baseline = dump(db_url)
    execute(db_url, "DELETE FROM parent")
    assert alembic_cleandb.clean(db_url) == 3  # parent, child, late
    assert dump(db_url) == baseline


def test_the_procedure_marks_the_cascade_closure_only_where_there_are_cascades() -> None:
    plain = mysql._procedure([(1, "`parent`")], sequence=True)
    assert "cleandb_cascades" not in plain
    for sequence in (True, False):
        body = mysql._procedure([(1, "`parent`")], sequence=sequence, cascades=True)
        statement = (
            "INSERT IGNORE INTO cleandb_dirty (tid, kind) SELECT c.child, 'd' FROM "
            "cleandb_cascades c JOIN cleandb_dirty d ON d.tid = c.parent AND d.kind IN ('u', 'd');"
        )
        assert statement in body
        # after the database guard, before the tables loop
        assert body.index("SIGNAL SQLSTATE '45000'") < body.index(statement)
        assert body.index(statement) < body.index("passes: LOOP")


# -- item 14: a row of an untracked table references a row a test wrote -----------------------

UNTRACKED = (
    "CREATE TABLE `Order` (id INT AUTO_INCREMENT PRIMARY KEY, label VARCHAR(10))",
    "CREATE TABLE empty_parent (id INT AUTO_INCREMENT PRIMARY KEY)",
    "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT, parent_id INT, "
    "FOREIGN KEY (order_id) REFERENCES `Order` (id), "
    "FOREIGN KEY (parent_id) REFERENCES empty_parent (id))",
    "INSERT INTO `Order` (id, label) VALUES (1, 'seed')",
    "INSERT INTO audit (order_id) VALUES (1)",
)


@MARIADB
def test_a_reference_from_an_untracked_table_to_a_written_row_refuses(db_url: str) -> None:
    track(db_url, *UNTRACKED, exclude=["audit"])
    baseline = dump(db_url)
    # updating a seed row and adding an untracked reference to it is fine: the row stays
    execute(db_url, "UPDATE `Order` SET label = 'changed' WHERE id = 1")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (1)")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url, ["Order"]) == {"Order": baseline["Order"]}
    execute(db_url, "DELETE FROM audit WHERE id > 1")
    # a reference to a row the reset would remove (seeded table)
    execute(db_url, "INSERT INTO `Order` (id, label) VALUES (2, 'new')")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (2)")
    with pytest.raises(
        ResetError,
        match=r"untracked table `audit` references a row a test "
        r"wrote to `Order`.*dangling reference.*marks are kept",
    ):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"Order"}
    assert dump(db_url, ["Order"])["Order"] == [(1, "seed"), (2, "new")]
    execute(db_url, "DELETE FROM audit WHERE order_id = 2")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
    # a reference to any row of a table empty at baseline
    execute(db_url, "INSERT INTO empty_parent () VALUES ()")
    execute(db_url, "INSERT INTO audit (parent_id) VALUES (1)")
    with pytest.raises(ResetError, match="`audit` references a row a test wrote to `empty_parent`"):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"empty_parent"}
    execute(db_url, "DELETE FROM audit WHERE parent_id = 1")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline


# -- item 15: MySQL 8's DEFAULT_GENERATED is data ---------------------------------------------


@pytest.mark.parametrize(
    ("extra", "generated"),
    [
        ("", False),
        ("auto_increment", False),
        ("DEFAULT_GENERATED", False),
        ("DEFAULT_GENERATED on update CURRENT_TIMESTAMP", False),
        ("on update CURRENT_TIMESTAMP", False),
        ("INVISIBLE", False),
        ("DEFAULT_GENERATED INVISIBLE", False),
        ("VIRTUAL GENERATED", True),
        ("STORED GENERATED", True),
        ("VIRTUAL GENERATED INVISIBLE", True),
        ("PERSISTENT GENERATED", True),  # MariaDB's older spelling
        ("VIRTUAL", True),
        ("PERSISTENT", True),
    ],
)
def test_only_generated_columns_are_left_out_of_copies(extra: str, generated: bool) -> None:
    assert mysql.generated_column(extra) is generated


@MARIADB
def test_timestamp_defaults_are_in_the_baseline_and_generated_columns_are_not(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE stamped (id INT PRIMARY KEY, "
        "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
        "updated_at TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, "
        "twice INT AS (id * 2) VIRTUAL, thrice INT AS (id * 3) STORED)",
        "INSERT INTO stamped (id, created_at, updated_at) "
        "VALUES (1, '2001-01-01 00:00:00', '2002-02-02 00:00:00')",
    )
    baseline = dump(db_url)
    execute(db_url, "UPDATE stamped SET id = 5")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline


# -- item 10: restore in place, by primary key ------------------------------------------------

STAMPED = (
    "CREATE TABLE status (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(10) NOT NULL UNIQUE, "
    "label VARCHAR(20) NOT NULL, created_at DATETIME NOT NULL)",
    "INSERT INTO status (id, code, label, created_at) VALUES "
    "(1, 'new', 'New', '2001-01-01 00:00:00'), (2, 'paid', 'Paid', '2001-01-02 00:00:00'), "
    "(3, 'sent', 'Sent', '2001-01-03 00:00:00')",
    # the application stamps every inserted row (a constant here, so the test is exact)
    "CREATE TRIGGER stamp BEFORE INSERT ON status FOR EACH ROW "
    "SET NEW.created_at = '2099-09-09 09:09:09'",
)


@MARIADB
def test_seed_rows_are_restored_in_place_and_no_insert_trigger_rewrites_them(db_url: str) -> None:
    track(db_url, *STAMPED)
    baseline = dump(db_url)
    # updated (in case only: the collation calls them equal), deleted, a key changed, inserted
    execute(
        db_url,
        "UPDATE status SET label = 'PAID' WHERE id = 2",
        "DELETE FROM status WHERE id = 1",
        "UPDATE status SET id = 30 WHERE id = 3",
        "INSERT INTO status (code, label, created_at) VALUES ('x', 'X', NOW())",
    )
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
    # the counter moved: restored too, without a TRUNCATE
    execute(db_url, "INSERT INTO status (code, label, created_at) VALUES ('y', 'Y', NOW())")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
    execute(db_url, "INSERT INTO status (code, label, created_at) VALUES ('z', 'Z', NOW())")
    with connect(db_url) as c:
        assert c.exec_driver_sql("SELECT id FROM status WHERE code = 'z'").scalar() == 4


@MARIADB
def test_unique_values_swapped_between_seed_rows_are_restored(db_url: str) -> None:
    track(db_url, *STAMPED)
    baseline = dump(db_url)
    execute(
        db_url,
        "UPDATE status SET code = 'tmp' WHERE id = 1",
        "UPDATE status SET code = 'new' WHERE id = 2",
        "UPDATE status SET code = 'paid' WHERE id = 1",
    )
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline


@MARIADB
def test_a_large_seeded_table_with_one_row_changed_is_restored_in_place(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) NOT NULL)",
        "SET SESSION max_recursive_iterations = 100000",
        "INSERT INTO big (v) WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 10000) SELECT CONCAT('row ', i) FROM n",
        # the application counts inserts: a reset that re-inserts every row would show
        "CREATE TABLE inserted (n INT NOT NULL)",
        "INSERT INTO inserted VALUES (0)",
        "CREATE TRIGGER count_it AFTER INSERT ON big FOR EACH ROW UPDATE inserted SET n = n + 1",
    )
    baseline = dump(db_url)
    for _ in range(2):
        execute(db_url, "UPDATE big SET v = 'changed' WHERE id = 5000")
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url) == baseline
    execute(db_url, "DELETE FROM big WHERE id = 7")
    assert alembic_cleandb.clean(db_url) >= 1
    assert dump(db_url) == baseline  # (the trigger's write to `inserted` was reset too)


# -- item 11: an append-only table whose own BEFORE DELETE trigger raises ---------------------


@MARIADB
@pytest.mark.parametrize("key", ["id INT AUTO_INCREMENT PRIMARY KEY", "id INT NOT NULL"])
def test_an_append_only_audit_table_empty_at_baseline_is_reset(db_url: str, key: str) -> None:
    track(
        db_url,
        f"CREATE TABLE audit ({key}, what VARCHAR(20))",
        "CREATE TRIGGER no_delete BEFORE DELETE ON audit FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit is append-only'",
        "CREATE TABLE item (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO item (name) VALUES ('seed')",
        "CREATE TRIGGER audit_it AFTER DELETE ON item FOR EACH ROW "
        "INSERT INTO audit (id, what) VALUES (OLD.id, 'deleted')",
    )
    baseline = dump(db_url)
    for _ in range(2):
        execute(db_url, "DELETE FROM item", "INSERT INTO audit (id, what) VALUES (9, 'x')")
        assert alembic_cleandb.clean(db_url) >= 2
        assert dump(db_url) == baseline
        assert marked(db_url) == set()


# -- item 13: names that differ only in letter case or accents; a latin1 database ------------


@MARIADB
def test_names_differing_in_case_or_accents_in_a_latin1_database(db_url: str) -> None:
    names = ["Order", "order", "cafe", "café", "注文"]
    with connect(db_url) as c:
        c.exec_driver_sql("ALTER DATABASE CHARACTER SET latin1 COLLATE latin1_swedish_ci")
    ddl = []
    for i, name in enumerate(names):
        quoted = "`" + name.replace("`", "``") + "`"
        ddl += [
            f"CREATE TABLE {quoted} (id INT AUTO_INCREMENT PRIMARY KEY, v INT) "
            "CHARACTER SET latin1",
            f"INSERT INTO {quoted} (v) VALUES ({i})",
        ]
    track(db_url, *ddl)
    baseline = dump(db_url)
    assert set(baseline) == set(names)
    for name in names:
        quoted = "`" + name.replace("`", "``") + "`"
        execute(db_url, f"INSERT INTO {quoted} (v) VALUES (99)", f"UPDATE {quoted} SET v = -1")
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url) == baseline
    with connect(db_url) as c:
        tracked = {str(n) for (n,) in c.exec_driver_sql("SELECT name FROM cleandb_tables")}
    assert tracked == set(names)


# -- item 12: a counter moved by a later migration step is the new baseline -------------------


@MARIADB
def test_a_counter_set_by_a_later_migration_step_is_the_baseline(db_url: str) -> None:
    from alembic_cleandb.backends import backend_for
    from alembic_cleandb.backends.base import Executor

    track(db_url, "CREATE TABLE invoice (id INT AUTO_INCREMENT PRIMARY KEY, total INT)")
    with connect(db_url) as c:  # a migration step: invoice numbers start at 1000
        c.exec_driver_sql("ALTER TABLE invoice AUTO_INCREMENT = 1000")
        # what the env hook runs after every migration step
        backend_for(c.dialect.name).sync(Executor.for_connection(c), after_migration=True)
    for _ in range(2):
        execute(db_url, "INSERT INTO invoice (total) VALUES (5)")
        assert dump(db_url)["invoice"] == [(1000, 5)]
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url)["invoice"] == []


# -- item 11: a SEEDED append-only table (its own DELETE and UPDATE triggers raise) ----------

APPEND_ONLY = (
    "CREATE TRIGGER no_delete BEFORE DELETE ON audit FOR EACH ROW "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit is append-only'",
    "CREATE TRIGGER no_update BEFORE UPDATE ON audit FOR EACH ROW "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit rows are immutable'",
    # the application counts inserts elsewhere: what the restore's own inserts write there is
    # reset too
    "CREATE TABLE counted (n INT NOT NULL)",
    "INSERT INTO counted VALUES (0)",
    "CREATE TRIGGER count_it AFTER INSERT ON audit FOR EACH ROW UPDATE counted SET n = n + 1",
)


@MARIADB
@pytest.mark.parametrize(
    ("key", "next_id"),
    [("id INT AUTO_INCREMENT PRIMARY KEY", 100), ("id INT NOT NULL", None)],
    ids=["auto-increment-key", "no-key"],
)
def test_a_seeded_append_only_audit_table_is_reset(
    db_url: str, key: str, next_id: int | None
) -> None:
    track(
        db_url,
        f"CREATE TABLE audit ({key}, what VARCHAR(20), at DATETIME NOT NULL)",
        "INSERT INTO audit (id, what, at) VALUES (1, 'seed', '2001-01-01 00:00:00'), "
        "(2, 'seed', '2001-01-02 00:00:00')",
        # a gap: the counter is not where re-inserting the seed rows leaves it
        *(["ALTER TABLE audit AUTO_INCREMENT = 100"] if next_id else []),
        *APPEND_ONLY,
    )
    baseline = dump(db_url)
    for _ in range(2):
        if next_id:
            execute(db_url, "INSERT INTO audit (what, at) VALUES ('test', NOW())")
        execute(db_url, "INSERT INTO audit (id, what, at) VALUES (3, 'test', NOW())")
        assert len(dump(db_url, ["audit"])["audit"]) == (4 if next_id else 3)
        assert alembic_cleandb.clean(db_url) >= 1
        assert dump(db_url) == baseline
        assert marked(db_url) == set()
    if next_id:
        execute(db_url, "INSERT INTO audit (what, at) VALUES ('next', NOW())")
        with connect(db_url) as c:
            assert c.exec_driver_sql("SELECT MAX(id) FROM audit").scalar() == next_id


@MARIADB
def test_a_seeded_append_only_table_whose_insert_trigger_rewrites_rows_refuses(
    db_url: str,
) -> None:
    """Its BEFORE INSERT trigger changes the restored seed rows and its UPDATE trigger refuses
    to change them back: exactness is impossible; the reset says so, keeps the marks, and
    loses no row."""
    track(
        db_url,
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME NOT NULL)",
        "INSERT INTO audit (id, at) VALUES (1, '2001-01-01 00:00:00')",
        *APPEND_ONLY,
        "CREATE TRIGGER stamp BEFORE INSERT ON audit FOR EACH ROW "
        "SET NEW.at = '2099-09-09 09:09:09'",
    )
    baseline = dump(db_url)
    execute(db_url, "INSERT INTO audit (at) VALUES (NOW())")
    with pytest.raises(
        ResetError, match=r"`audit`.*own triggers.*audit rows are immutable.*exclude"
    ):
        alembic_cleandb.clean(db_url)
    assert "audit" in marked(db_url)
    # no row lost: the seed row is there (as the application's trigger stamped it)
    assert [r[0] for r in dump(db_url, ["audit"])["audit"]] == [1]
    # the way out: the application's trigger lets the reset put the row back
    execute(db_url, "DROP TRIGGER no_update")
    assert alembic_cleandb.clean(db_url) >= 1
    assert dump(db_url) == baseline
    assert marked(db_url) == set()


# -- item 12 (a): a seed row with id 0, inserted under NO_AUTO_VALUE_ON_ZERO ----------------


@MARIADB
@pytest.mark.parametrize("triggers", [False, True], ids=["copied-back", "in-place"])
def test_a_seed_row_with_id_0_keeps_its_id(db_url: str, triggers: bool) -> None:
    track(
        db_url,
        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
        "CREATE TABLE account (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO account (id, name) VALUES (0, 'system'), (1, 'admin')",
        *(
            ["CREATE TRIGGER same BEFORE INSERT ON account FOR EACH ROW SET NEW.name = NEW.name"]
            if triggers
            else []
        ),
    )
    baseline = dump(db_url)
    assert baseline["account"] == [(0, "system"), (1, "admin")]
    for writes in (
        ["DELETE FROM account WHERE id = 0"],
        ["INSERT INTO account (name) VALUES ('x')"],
        ["DELETE FROM account", "INSERT INTO account (name) VALUES ('y')"],
    ):
        execute(db_url, *writes)
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url) == baseline


# -- item 12 (b): MariaDB SEQUENCE objects (column defaults, explicit NEXTVAL) ----------------

SEQUENCES = (
    "CREATE SEQUENCE invoice_no START WITH 1000",  # CACHE 1000, the default
    "CREATE SEQUENCE ticket_no NOCACHE",
    "CREATE TABLE invoice (id INT PRIMARY KEY DEFAULT NEXTVAL(invoice_no), total INT)",
    "INSERT INTO invoice (total) VALUES (1), (2)",
    "SELECT NEXTVAL(ticket_no)",
)


def next_values(url: str) -> tuple[int, int]:
    with connect(url) as c:
        row = c.exec_driver_sql("SELECT NEXTVAL(invoice_no), NEXTVAL(ticket_no)").one()
    return int(row[0]), int(row[1])


def baseline_next_values(url: str) -> tuple[int, int]:
    """The values the baseline hands out next (taken, then given back by a reset). A cached
    sequence's position is where the server's cache stood at install: MariaDB drops the cache
    (values 1002-1999 here) whenever the sequence's table leaves the table cache."""
    values = next_values(url)
    assert alembic_cleandb.clean(url) == 0
    assert values[1] == 2 and values[0] in (1002, 2000)
    return values


@MARIADB
def test_sequences_go_back_to_their_baseline_position(db_url: str) -> None:
    track(db_url, *SEQUENCES)
    baseline = dump(db_url)
    assert baseline["invoice"] == [(1000, 1), (1001, 2)]
    expected = baseline_next_values(db_url)
    for _ in range(2):
        # a row through the default, an explicit NEXTVAL, and values taken by a rollback
        execute(db_url, "INSERT INTO invoice (total) VALUES (3)", "SELECT NEXTVAL(ticket_no)")
        with connect(db_url, begin=False) as c:
            c.exec_driver_sql("INSERT INTO invoice (total) VALUES (4)")
            c.rollback()
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url) == baseline
        assert next_values(db_url) == expected
        # a test that only takes values (no table written) is reset too
        assert alembic_cleandb.clean(db_url) == 0
        assert next_values(db_url) == expected


@MARIADB
def test_a_sequence_moved_by_a_later_migration_step_is_the_baseline(db_url: str) -> None:
    from alembic_cleandb.backends import backend_for
    from alembic_cleandb.backends.base import Executor

    track(db_url, *SEQUENCES)
    with connect(db_url) as c:  # a migration step: invoice numbers from 5000 on
        c.exec_driver_sql("SELECT SETVAL(invoice_no, 4999)")
        backend_for(c.dialect.name).sync(Executor.for_connection(c), after_migration=True)
    execute(db_url, "INSERT INTO invoice (total) VALUES (3)")
    assert max(dump(db_url)["invoice"]) == (5000, 3)
    alembic_cleandb.clean(db_url)
    assert next_values(db_url) == (5000, 2)


# -- item 12 (c): system-versioned tables -------------------------------------------------------


@MARIADB
@pytest.mark.parametrize("seeded", [False, True], ids=["empty", "seeded"])
@pytest.mark.parametrize(
    "columns",
    [
        "",
        ", rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START, "
        "re TIMESTAMP(6) GENERATED ALWAYS AS ROW END, PERIOD FOR SYSTEM_TIME (rs, re)",
    ],
    ids=["implicit", "explicit-period"],
)
def test_a_system_versioned_table_is_tracked_and_reset(
    db_url: str, seeded: bool, columns: str
) -> None:
    track(
        db_url,
        f"CREATE TABLE price (id INT AUTO_INCREMENT PRIMARY KEY, amount INT{columns}) "
        "WITH SYSTEM VERSIONING",
        *(["INSERT INTO price (amount) VALUES (10), (20)"] if seeded else []),
    )
    with connect(db_url) as c:
        assert "price" in {str(n) for (n,) in c.exec_driver_sql("SELECT name FROM cleandb_tables")}
    current = "SELECT id, amount FROM price ORDER BY id"
    with connect(db_url) as c:
        baseline = c.exec_driver_sql(current).fetchall()
    counter = (
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'price'"
    )
    with connect(db_url) as c:
        base_counter = c.exec_driver_sql(counter).scalar()
    # an insert that rolled back leaves no history: the counter goes back exactly
    with connect(db_url, begin=False) as c:
        c.exec_driver_sql("INSERT INTO price (amount) VALUES (99)")
        c.rollback()
    alembic_cleandb.clean(db_url)
    with connect(db_url) as c:
        assert c.exec_driver_sql(counter).scalar() == base_counter == (3 if seeded else 1)
    execute(
        db_url, "INSERT INTO price (id, amount) VALUES (50, 50)", "DELETE FROM price WHERE id = 50"
    )
    for _ in range(2):
        execute(
            db_url,
            "INSERT INTO price (amount) VALUES (30)",
            "UPDATE price SET amount = amount + 1",
            "DELETE FROM price WHERE id = 1",
        )
        assert alembic_cleandb.clean(db_url) == 1
        assert marked(db_url) == set()
        with connect(db_url) as c:
            assert c.exec_driver_sql(current).fetchall() == baseline
    with connect(db_url) as c:
        # the test's versions (and the reset's own) stay in the history, as the docs say
        history = c.exec_driver_sql(
            "SELECT COUNT(*) FROM price FOR SYSTEM_TIME ALL WHERE amount IN (30, 31)"
        ).scalar()
        # and keep their keys: the counter goes back only as far as past the highest of them
        highest = c.exec_driver_sql("SELECT MAX(id) FROM price FOR SYSTEM_TIME ALL").scalar()
    assert history == 4 and highest == 52
    execute(db_url, "INSERT INTO price (amount) VALUES (40)")
    with connect(db_url) as c:
        assert c.exec_driver_sql("SELECT MAX(id) FROM price").scalar() == highest + 1


# -- item 18: non-transactional engines; TRUNCATE of a table empty at baseline ----------------


@MARIADB
@pytest.mark.parametrize("engine", ["MyISAM", "Aria"])
def test_a_non_transactional_table_written_in_a_rolled_back_transaction_is_reset(
    db_url: str, engine: str
) -> None:
    track(
        db_url,
        f"CREATE TABLE cache_entry (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)) "
        f"ENGINE={engine}",
        "INSERT INTO cache_entry (v) VALUES ('seed')",
        "CREATE TABLE plain (id INT PRIMARY KEY)",
    )
    baseline = dump(db_url)
    for writes in (
        ["INSERT INTO cache_entry (v) VALUES ('x')"],
        ["UPDATE cache_entry SET v = 'changed'"],
        ["DELETE FROM cache_entry"],
    ):
        with connect(db_url, begin=False) as c:
            c.exec_driver_sql("INSERT INTO plain VALUES (1)")
            for statement in writes:
                c.exec_driver_sql(statement)
            c.rollback()  # the InnoDB row goes, the MyISAM/Aria write stays
        assert dump(db_url) != baseline
        assert alembic_cleandb.clean(db_url) == 1
        assert dump(db_url) == baseline
        assert marked(db_url) == set()
    execute(db_url, "INSERT INTO cache_entry (v) VALUES ('next')")
    assert max(dump(db_url)["cache_entry"]) == (2, "next")


@MARIADB
def test_a_truncate_of_a_table_empty_at_baseline_whose_counter_had_moved_is_reset(
    db_url: str,
) -> None:
    track(
        db_url,
        "CREATE TABLE invoice (id INT AUTO_INCREMENT PRIMARY KEY, total INT) AUTO_INCREMENT = 1000",
        "CREATE TABLE other (id INT AUTO_INCREMENT PRIMARY KEY)",
    )
    for _ in range(2):
        execute(db_url, "TRUNCATE TABLE invoice")  # fires no trigger; the counter goes to 1
        assert alembic_cleandb.clean(db_url) == 1
        execute(db_url, "INSERT INTO invoice (total) VALUES (5)")
        assert dump(db_url)["invoice"] == [(1000, 5)]
        assert alembic_cleandb.clean(db_url) == 1
    assert alembic_cleandb.clean(db_url) == 0


# -- items 12 (a, b) in pytest-xdist worker copies ---------------------------------------------


@MARIADB
def test_a_worker_copy_keeps_id_0_rows_and_sequence_positions(
    databases: Databases, db_url: str
) -> None:
    from alembic_cleandb.backends import backend_for_url

    track(
        db_url,
        "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_AUTO_VALUE_ON_ZERO')",
        "CREATE TABLE account (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "INSERT INTO account (id, name) VALUES (0, 'system'), (1, 'admin')",
        *SEQUENCES,
    )
    baseline = dump(db_url)
    expected = baseline_next_values(db_url)
    copy = databases.create()
    admin = backend_for_url(db_url)
    admin.drop(sa.make_url(copy))
    admin.copy(sa.make_url(db_url), sa.make_url(copy))
    assert dump(copy) == baseline
    execute(copy, "DELETE FROM account", "INSERT INTO invoice (total) VALUES (3)")
    assert alembic_cleandb.clean(copy) == 2
    assert dump(copy) == baseline
    assert next_values(copy) == expected


@MARIADB
def test_ids_that_keep_counting_with_append_only_tables_and_sequences(db_url: str) -> None:
    """``restart_ids=False``: append-only tables (seeded or empty, a DELETE trigger that raises)
    are still truncated - a DELETE would fire their triggers - and MariaDB sequences keep
    counting like every other counter; the next reset that restarts ids puts them back."""
    track(
        db_url,
        "CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20), "
        "at DATETIME NOT NULL)",
        "INSERT INTO audit (what, at) VALUES ('seed', '2001-01-01 00:00:00')",
        *APPEND_ONLY,
        "CREATE TABLE log (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))",
        "CREATE TRIGGER log_kept BEFORE DELETE ON log FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'log is append-only'",
        *SEQUENCES,
    )
    baseline = dump(db_url)
    expected = baseline_next_values(db_url)
    execute(
        db_url,
        "INSERT INTO audit (what, at) VALUES ('test', NOW())",
        "INSERT INTO log (what) VALUES ('test')",
        "INSERT INTO invoice (total) VALUES (3)",
    )
    moved = next_values(db_url)
    assert moved[0] > expected[0]
    assert alembic_cleandb.clean(db_url, restart_ids=False) >= 3
    assert dump(db_url) == baseline
    after = next_values(db_url)  # the sequences kept counting
    assert after[0] > moved[0] and after[1] > moved[1]
    assert alembic_cleandb.clean(db_url) == 0  # counters restart: the sequences go back
    assert next_values(db_url) == expected
    assert marked(db_url) == set()
