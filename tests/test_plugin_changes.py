"""cleandb_show_changes: a failed test's report lists the rows it wrote - added, removed and
changed, per database and table, compared with the baseline before the reset - on each
backend, under -n 0 and -n 2, in the terminal and in --junitxml output."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql

from alembic_cleandb import set_baseline
from alembic_cleandb._connect import safe_url
from alembic_cleandb._sql import SQL, inline
from alembic_cleandb.backends.base import ChangeSource, difference_query
from alembic_cleandb.changes import (
    ChangedRow,
    Row,
    TableChanges,
    format_changes,
    format_value,
)
from dbutil import execute

slow = pytest.mark.slow  # runs pytest sessions, some with -n 2

SECTION = "cleandb: rows written (before the reset in teardown)"

TESTS = """
import pytest
import sqlalchemy as sa

def _write(url):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            meta = sa.MetaData()
            user = sa.Table("user", meta, autoload_with=c)
            status = sa.Table("lookup_status", meta, autoload_with=c)
            log = sa.Table("event_log", meta, autoload_with=c)
            c.execute(user.insert().values(id=7, name="x"))
            c.execute(status.update().where(status.c.id == 2).values(label="Settled"))
            c.execute(status.delete().where(status.c.id == 3))
            # 'dup' was there 3 times: now twice (a multiset difference of one row)
            c.execute(log.delete().where(log.c.message == "dup"))
            c.execute(log.insert(), [{"message": "dup"}, {"message": "dup"}, {"message": "new"}])
    finally:
        engine.dispose()

def test_fails(cleandb_url):
    _write(cleandb_url)
    assert False, "the test's own failure"

def test_passes(cleandb_url):
    _write(cleandb_url)
"""

# What the test above shows, as README.md shows it (the section onwards, its URL replaced).
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
(EXAMPLE,) = [b for b in re.findall(r"```text\n(.*?)```", README, re.S) if SECTION in b]
EXPECTED = [
    f"*- {SECTION} -*" if SECTION in line else line
    for line in EXAMPLE.splitlines()[
        next(i for i, line in enumerate(EXAMPLE.splitlines()) if SECTION in line) :
    ]
]
EXPECTED[1] = "{url}"


def _seed(url: str) -> None:
    """Three identical rows in a table without a primary key, as part of the baseline."""
    execute(url, "INSERT INTO event_log (message) VALUES ('dup'), ('dup'), ('dup')")
    set_baseline(url)


def _expected(url: str) -> list[str]:
    shown = url if url.startswith("*") else safe_url(url)
    return [line.replace("{url}", shown) for line in EXPECTED]


@slow
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_failed_test_shows_what_it_wrote(
    pytester: pytest.Pytester, migrated: str, workers: str
) -> None:
    _seed(migrated)
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_it=TESTS)
    result = pytester.runpytest("-n", workers, "-p", "no:randomly", "-k", "fails")
    result.assert_outcomes(failed=1)
    # under -n 2: the copy of the database the worker that ran the test uses
    lines = _expected(migrated) if workers == "0" else _expected("*_gw[01]*")
    result.stdout.fnmatch_lines(lines, consecutive=True)
    # the reset ran after the comparison: the next run starts from the baseline again
    again = pytester.runpytest("-n", workers, "-p", "no:randomly", "-k", "fails")
    again.stdout.fnmatch_lines(lines, consecutive=True)


@slow
@pytest.mark.parametrize(
    "ini, flag, which, shown",
    [
        ("", "", "passes", False),  # the default: a passing test, nothing to show
        ("all", "", "passes", True),  # all: a passing test too (-rP prints its sections)
        ("failed", "--cleandb-show-changes=never", "fails", False),  # the flag wins over ini
    ],
)
def test_which_tests_show_it(
    pytester: pytest.Pytester, migrated: str, ini: str, flag: str, which: str, shown: bool
) -> None:
    _seed(migrated)
    setting = f"cleandb_show_changes = {ini}\n" if ini else ""
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n{setting}")
    pytester.makepyfile(test_it=TESTS)
    result = pytester.runpytest("-p", "no:randomly", "-rP", "-k", which, *filter(None, [flag]))
    result.assert_outcomes(**{"passed" if which == "passes" else "failed": 1})
    if shown:
        result.stdout.fnmatch_lines(_expected(migrated), consecutive=True)
    else:
        assert SECTION not in result.stdout.str()


@slow
def test_junitxml_has_the_section(pytester: pytest.Pytester, migrated: str) -> None:
    _seed(migrated)
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_it=TESTS)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("-p", "no:randomly", f"--junitxml={junit}")
    result.assert_outcomes(failed=1, passed=1)
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    found = [
        p.get("value")
        for p in cases["test_fails"].iter("property")
        if p.get("name") == "cleandb_rows_written"
    ]
    expected = [line for line in _expected(migrated)[1:]]
    assert found == ["\n".join(expected) + "\n"]
    assert not list(cases["test_passes"].iter("property"))


CAPPED = """
import sqlalchemy as sa

def test_many(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    with engine.begin() as c:
        user = sa.Table("user", sa.MetaData(), autoload_with=c)
        c.execute(user.insert(), [{"id": i, "name": "n" * 30 + str(i) * 30} for i in range(1, 26)])
    engine.dispose()
    raise RuntimeError("boom")
"""


@slow
def test_caps_and_long_values(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_many=CAPPED)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "  table user (key id): 25 added",
            "    + (id=1, name='nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn1111111111…' (60 chars))",
            "    + (id=2, name='nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn2222222222…' (60 chars))",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            "    + (id=20, name='nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn2020202020…' (90 chars))",
            "    … and 5 more added",
        ],
        consecutive=True,
    )
    assert "id=21," not in result.stdout.str()


LOCKED = """
import pytest
import sqlalchemy as sa

LOCK = {lock!r}

@pytest.fixture(scope="session")
def holders():
    held = []
    yield held  # released after every test's teardown, the reset's included
    for connection, engine in held:
        connection.rollback()
        connection.close()
        engine.dispose()

def test_leaves_a_lock(cleandb_url, holders):
    engine = sa.create_engine(cleandb_url)
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO event_log (message) VALUES ('x')")
    connection = engine.connect()
    holders.append((connection, engine))
    for statement in LOCK:
        connection.exec_driver_sql(statement)
    assert False, "the test's own failure"
"""
LOCKS = {
    "postgresql": ["LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE"],
    "mariadb": ["LOCK TABLES event_log WRITE"],
    "sqlite": ["BEGIN EXCLUSIVE"],
}


@slow
def test_a_comparison_that_fails_says_why_in_one_line(
    pytester: pytest.Pytester, migrated: str, backend: str
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\ncleandb_lock_timeout = 1\n")
    pytester.makepyfile(test_locked=LOCKED.replace("{lock!r}", repr(LOCKS[backend])))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, errors=1)  # the reset, too, meets the lock
    result.stdout.fnmatch_lines(
        [
            f"*- {SECTION} -*",
            f"{safe_url(migrated)}: could not compare with the baseline: *",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["*AssertionError: the test's own failure"])
    assert "INTERNALERROR" not in result.stdout.str()


@slow
def test_a_bad_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleandb_show_changes = sometimes\n")
    pytester.makepyfile(test_it="def test_x(): pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*cleandb_show_changes must be one of failed, all, never, not 'sometimes'*"]
    )


# -- the text, without a server ---------------------------------------------------------------


def test_values_are_shown_readably() -> None:
    assert format_value(None) == "NULL"
    assert format_value(True) == "true"
    assert format_value(3) == "3"
    assert format_value("it's") == '"it\'s"'
    assert format_value(b"\x00\xff") == "x'00ff'"
    assert format_value("a" * 50) == "'" + "a" * 40 + "…' (50 chars)"
    assert format_value(b"\x01" * 30) == "x'" + "01" * 20 + "…' (30 bytes)"


def test_format_changes() -> None:
    table = TableChanges(
        "Order",
        ("id",),
        added=(Row((("id", 3), ("total", 1))),),
        removed=(),
        changed=(ChangedRow((("id", 2),), (("total", 1, 2),)),),
        added_total=4,
        changed_total=1,
    )
    assert format_changes("sqlite:///x.db", [table, TableChanges("empty", ())]) == [
        "sqlite:///x.db",
        "  table Order (key id): 4 added, 1 changed",
        "    + (id=3, total=1)",
        "    … and 3 more added",
        "    ~ id=2: total 1 → 2",
    ]
    assert format_changes("x", [TableChanges("empty", ())]) == []
    assert format_changes("x", "gone") == ["x: could not compare with the baseline: gone"]


def test_the_difference_query_on_mysql8() -> None:
    """MySQL 8 cannot run here: the whole statement, as the MySQL dialect renders it (window
    functions and CTEs: MySQL 8.0+, MariaDB 10.2+, SQLite 3.25+, PostgreSQL)."""
    source = ChangeSource("Order", ("id", "note"), ("id",), SQL("SELECT c0, c1, 1 AS cleandb_n"))
    assert inline(difference_query(source, 20), MySQLDialect_pymysql()) == (
        "WITH cleandb_d AS (SELECT c0, c1, 1 AS cleandb_n), "
        "cleandb_k AS (SELECT cleandb_d.*, CASE WHEN count(*) OVER (PARTITION BY c0) > 1 "
        "THEN 0 WHEN cleandb_n > 0 THEN 1 ELSE 2 END AS cleandb_kind FROM cleandb_d), "
        "cleandb_r AS (SELECT cleandb_k.*, dense_rank() OVER (PARTITION BY cleandb_kind "
        "ORDER BY c0) AS cleandb_rank, sum(abs(cleandb_n)) OVER (PARTITION BY cleandb_kind) "
        "AS cleandb_total FROM cleandb_k) SELECT c0, c1, cleandb_n, cleandb_kind, cleandb_total "
        "FROM cleandb_r WHERE cleandb_rank <= 20 ORDER BY cleandb_kind, c0, cleandb_n"
    )
    keyless = ChangeSource("log", ("m",), (), SQL("SELECT c0, 1 AS cleandb_n"))
    text = inline(difference_query(keyless, 5), MySQLDialect_pymysql())
    assert (
        "CASE WHEN cleandb_n > 0 THEN 1 ELSE 2 END" in text and "ORDER BY cleandb_kind, c0," in text
    )


def test_inside_a_scope_the_changes_are_against_the_scopes_baseline(migrated: str) -> None:
    """A scoped baseline's rows are the baseline: only what was written since is shown."""
    from alembic_cleandb import Cleaner
    from dbutil import insert

    with Cleaner(migrated) as cleaner:
        with cleaner.scope():
            insert(migrated, "user", name="seed")
        insert(migrated, "user", name="test")
        (user,) = cleaner.changes()
        assert (user.added_total, user.removed_total, user.changed_total) == (1, 0, 0)
        assert "test" in repr(user.added) and "seed" not in repr(user.added)
        cleaner.reset()
        assert cleaner.pop_baseline() == 0
