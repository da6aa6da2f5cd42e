"""--cleandb-report: reset times, the tables tests write, the tests that write the most, and
writes to tables no reset undoes - the same under -n 0 and -n 2, on each backend."""

from __future__ import annotations

import pytest

from dbutil import execute

pytestmark = pytest.mark.slow  # runs pytest sessions, some with -n 2

TESTS = """
import pytest
import sqlalchemy as sa

def _insert(url, table, **values):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            t = sa.Table(table, sa.MetaData(), autoload_with=c)
            return c.execute(t.insert().values(**values)).inserted_primary_key[0]
    finally:
        engine.dispose()

def test_a_writes_two_tables(cleandb_url):
    user_id = _insert(cleandb_url, "user", name="a")
    _insert(cleandb_url, "Order", user_id=user_id)

def test_b_writes_one(cleandb_url):
    _insert(cleandb_url, "user", name="b")

@pytest.mark.cleandb_skip
def test_c_skipped():
    pass

def test_d_writes_an_untracked_table(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO {notes} (x) VALUES (1)")
    engine.dispose()

def test_e_writes_nothing():
    pass
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_report(pytester: pytest.Pytester, migrated: str, backend: str, workers: str) -> None:
    # A table tracking does not know: PostgreSQL tracks the current schema (and attaches new
    # tables there at once), so put it in another schema; elsewhere just create it.
    notes = "side.notes" if backend == "postgresql" else "notes"
    if backend == "postgresql":
        execute(migrated, "CREATE SCHEMA side")
    execute(migrated, f"CREATE TABLE {notes} (x INTEGER)")
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_report=TESTS.replace("{notes}", notes))
    result = pytester.runpytest("-n", workers, "--cleandb-report", "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*= alembic-cleandb report =*",
            "5 tests: 4 resets, 1 skipped (cleandb_skip); reset time * s in total, * ms per test",
            "slowest resets:",
            "tables written most often (number of tests):",
            "         2  user",
            "         1  Order",
            "tests that wrote the most tables:",
            "         2  test_report.py::test_a_writes_two_tables",
            "         1  test_report.py::test_b_writes_one",
            "WRITTEN BUT NOT TRACKED, no reset undoes these writes (tables excluded from tracking"
            " or created outside migrations; see docs/troubleshooting.md):",
            f"  {notes}: 0 rows -> 1 rows; first by "
            "test_report.py::test_d_writes_an_untracked_table (1 tests)",
        ]
    )


def test_no_report_without_the_flag(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(
        test_one="""
        def test_one(request):
            request.getfixturevalue("cleandb_cleaners")
            assert "_cleandb_probes" not in request.fixturenames
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "alembic-cleandb report" not in result.stdout.str()
    # ... and the ini option turns it on like the flag.
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\ncleandb_report = true\n")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*= alembic-cleandb report =*", "1 tests: 1 resets, *"])
