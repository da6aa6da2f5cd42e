"""Resets that keep ids counting (``restart_ids=False``, ``cleandb_restart_ids = never``) on
real PostgreSQL, MariaDB and SQLite: rows back to their baseline, counters never moved
backwards, and ``always`` (the default) restores every counter that moved meanwhile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

import alembic_cleandb
from dbutil import connect, execute, insert, q, rows

#: Per backend: a seeded table (ids 1 and 2) and an empty one whose counter starts at 1000,
#: as a migration would set it. SQLite: AUTOINCREMENT (a plain rowid table has no counter).
TABLES = {
    "postgresql": [
        'CREATE TABLE "Seeded" (id bigserial PRIMARY KEY, name text NOT NULL)',
        'CREATE TABLE "counted-from" (id bigserial PRIMARY KEY, name text NOT NULL)',
        "SELECT setval(pg_get_serial_sequence('\"counted-from\"', 'id'), 1000, false)",
    ],
    "mariadb": [
        "CREATE TABLE `Seeded` (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL)",
        "CREATE TABLE `counted-from` (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "name VARCHAR(20) NOT NULL) AUTO_INCREMENT = 1000",
    ],
    "sqlite": [
        'CREATE TABLE "Seeded" (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)',
        'CREATE TABLE "counted-from" (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)',
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('counted-from', 999)",
    ],
}
SEED = [(1, "one"), (2, "two")]


def run(url: str, statement: str) -> None:
    """``statement`` with ``{Seeded}`` quoted as the dialect quotes it."""
    with connect(url) as c:
        c.execute(sa.text(statement.format(Seeded=q(c, "Seeded"))))


@pytest.fixture
def tables(migrated: str, backend: str) -> str:
    """The two tables, tracked, their seed rows and counters the baseline."""
    execute(migrated, *TABLES[backend])
    for _, name in SEED:
        insert(migrated, "Seeded", name=name)
    alembic_cleandb.sync(migrated)
    alembic_cleandb.set_baseline(migrated)
    return migrated


def test_never_puts_rows_back_and_keeps_ids_counting(tables: str) -> None:
    url = tables
    assert insert(url, "Seeded", name="three") == 3
    run(url, "UPDATE {Seeded} SET name = 'changed' WHERE id = 1")
    assert insert(url, "counted-from", name="a") == 1000
    assert insert(url, "counted-from", name="b") == 1001
    assert alembic_cleandb.clean(url, restart_ids=False) == 2
    assert rows(url, "Seeded") == SEED
    assert rows(url, "counted-from") == []
    # No id handed out twice: the next rows get ids after the test's.
    assert insert(url, "Seeded", name="four") == 4
    assert insert(url, "counted-from", name="c") == 1002
    assert alembic_cleandb.clean(url, restart_ids=False) == 2
    assert insert(url, "Seeded", name="five") == 5
    assert insert(url, "counted-from", name="d") == 1003


def test_never_after_explicit_ids_hands_out_no_colliding_id(tables: str, backend: str) -> None:
    url = tables
    run(url, "INSERT INTO {Seeded} (id, name) VALUES (50, 'explicit')")
    assert insert(url, "Seeded", name="generated") is not None
    alembic_cleandb.clean(url, restart_ids=False)
    assert rows(url, "Seeded") == SEED
    following = insert(url, "Seeded", name="next")
    assert following is not None and following > 2  # never a seed row's id
    if backend != "postgresql":  # (a sequence does not see explicit ids; the row is gone)
        assert following == 52


def test_never_keeps_a_counter_a_migration_set_at_or_past_it(tables: str) -> None:
    url = tables
    assert alembic_cleandb.clean(url, restart_ids=False) == 0
    assert insert(url, "counted-from", name="a") == 1000
    alembic_cleandb.clean(url, restart_ids=False)
    assert insert(url, "counted-from", name="b") == 1001


def test_always_after_never_restores_every_counter(tables: str, backend: str) -> None:
    url = tables
    insert(url, "Seeded", name="three")
    insert(url, "counted-from", name="a")
    alembic_cleandb.clean(url, restart_ids=False)
    # A writer that rolled back took an id too.
    with connect(url, begin=False) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'Seeded')} (name) VALUES ('rolled back')"))
        c.rollback()
    assert alembic_cleandb.clean(url, restart_ids=False) == 0
    # Nothing is marked now, yet the default reset puts both counters back.
    alembic_cleandb.clean(url)
    assert rows(url, "Seeded") == SEED
    assert insert(url, "Seeded", name="three") == 3
    assert insert(url, "counted-from", name="a") == 1000
    assert alembic_cleandb.clean(url) == 2
    assert insert(url, "Seeded", name="three") == 3


def test_always_restarts_ids_as_before(tables: str) -> None:
    url = tables
    for _ in range(2):
        assert insert(url, "Seeded", name="three") == 3
        assert insert(url, "counted-from", name="a") == 1000
        assert alembic_cleandb.clean(url, restart_ids=True) == 2
        assert rows(url, "Seeded") == SEED


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])  # (SQLite has no routines)
def test_the_database_side_entry_point_still_restarts_ids(tables: str, backend: str) -> None:
    """``SELECT cleandb_truncate()`` / ``CALL cleandb_truncate()`` as every version had it."""
    url = tables
    insert(url, "counted-from", name="a")
    alembic_cleandb.clean(url, restart_ids=False)
    insert(url, "Seeded", name="three")
    with connect(url) as c:
        call = "CALL cleandb_truncate()" if backend == "mariadb" else "SELECT cleandb_truncate()"
        # (MariaDB also counts `counted-from`, empty at baseline: its counter probe finds the
        # counter the reset that kept counting left past its baseline - a TRUNCATE by a test
        # would look the same)
        assert c.exec_driver_sql(call).scalar() == (2 if backend == "mariadb" else 1)
    assert rows(url, "Seeded") == SEED
    assert insert(url, "Seeded", name="three") == 3
    assert insert(url, "counted-from", name="a") == 1000


def test_cleaner_keeps_counting_across_resets(tables: str) -> None:
    url = tables
    with alembic_cleandb.Cleaner(url, restart_ids=False) as cleaner:
        ids = []
        for _ in range(3):
            ids.append(insert(url, "counted-from", name="x"))
            assert cleaner.reset() == 1
            assert rows(url, "counted-from") == []
    assert ids == [1000, 1001, 1002]


# -- the pytest option -----------------------------------------------------------------------

#: Three tests in a row insert a row each into the table whose counter starts at 1000.
INNER = """
import sqlalchemy as sa

def insert(url):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            table = sa.Table("counted-from", sa.MetaData(), autoload_with=c)
            return c.execute(table.insert().values(name="x")).inserted_primary_key[0]
    finally:
        engine.dispose()

def test_1(cleandb_url):
    assert insert(cleandb_url) == 1000

def test_2(cleandb_url):
    assert insert(cleandb_url) == {second}

def test_3(cleandb_url):
    assert insert(cleandb_url) == {third}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ini", "args", "counting"),
    [
        ("", (), False),  # the default: always
        ("cleandb_restart_ids = never", (), True),
        ("cleandb_restart_ids = never", ("--cleandb-restart-ids=always",), False),
        ("cleandb_restart_ids = always", ("--cleandb-restart-ids", "never"), True),
        # under pytest-xdist each worker resets its own copy as told (both run every test)
        ("", ("--cleandb-restart-ids=never", "-n", "2", "--dist", "each"), True),
    ],
    ids=["default", "ini-never", "cli-always", "cli-never", "xdist-never"],
)
def test_the_plugin_option(
    pytester: pytest.Pytester, tables: str, ini: str, args: tuple[str, ...], counting: bool
) -> None:
    url = tables
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n{ini}\n")
    second, third = (1001, 1002) if counting else (1000, 1000)
    pytester.makepyfile(test_ids=INNER.format(second=second, third=third))
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=6 if "-n" in args else 3)
    assert rows(url, "counted-from") == []


@pytest.mark.slow
def test_a_run_with_always_after_a_run_with_never_starts_from_the_baseline_ids(
    pytester: pytest.Pytester, tables: str
) -> None:
    """The first test of an ``always`` run gets the baseline ids although the ``never`` run
    before left every counter past them (the session's first reset restores them)."""
    pytester.makeini(f"[pytest]\ncleandb_urls = {tables}\n")
    pytester.makepyfile(test_ids=INNER.format(second=1001, third=1002))
    pytester.runpytest("--cleandb-restart-ids=never").assert_outcomes(passed=3)
    pytester.makepyfile(test_ids=INNER.format(second=1000, third=1000))
    pytester.runpytest().assert_outcomes(passed=3)


@pytest.mark.slow
def test_the_readme_example(pytester: pytest.Pytester, tables: str) -> None:
    """README, "Ids that keep counting": its ini section as written, the URL made this test's."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (example,) = [b for b in re.findall(r"```ini\n(.*?)```", readme, re.S) if "restart_ids" in b]
    pytester.makeini(re.sub(r"(?m)^cleandb_urls = .*$", f"cleandb_urls = {tables}", example))
    pytester.makepyfile(test_ids=INNER.format(second=1001, third=1002))
    pytester.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize("backend", ["sqlite"])  # (read before any database is opened)
@pytest.mark.parametrize("where", ["ini", "cli"])
def test_a_bad_value_is_a_usage_error_naming_the_choices(
    pytester: pytest.Pytester, db_url: str, where: str
) -> None:
    ini = "cleandb_restart_ids = sometimes" if where == "ini" else ""
    pytester.makeini(f"[pytest]\ncleandb_urls = {db_url}\n{ini}\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    args = ["--cleandb-restart-ids=sometimes"] if where == "cli" else []
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: cleandb_restart_ids must be one of always, never, not 'sometimes'"]
    )


def test_never_puts_a_counter_a_test_restarted_back_up_to_its_baseline(
    tables: str, backend: str
) -> None:
    """A test that restarts a counter itself: the rows come back, and the next id collides
    with none of them (PostgreSQL: the sequence goes back up to its baseline; MySQL/MariaDB
    and SQLite: restoring the rows with their keys moves the counter past them)."""
    url = tables
    restart = {
        "postgresql": "TRUNCATE {Seeded} RESTART IDENTITY",
        "mariadb": "TRUNCATE TABLE {Seeded}",
        "sqlite": "DELETE FROM sqlite_sequence WHERE name = 'Seeded'",
    }[backend]
    run(url, "DELETE FROM {Seeded}")
    run(url, restart)
    alembic_cleandb.clean(url, restart_ids=False)
    assert rows(url, "Seeded") == SEED
    assert insert(url, "Seeded", name="three") == 3
