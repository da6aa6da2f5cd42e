"""The cleandb_scope fixture (issue 15 part 2): seed data of a class, module or session scope,
run through the plugin on real PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import pytest

from alembic_cleandb import Cleaner
from alembic_cleandb.testing import xdist as _xdist
from alembic_cleandb.testing.plugin import worker_url
from conftest import ROOT, upgrade
from dbutil import insert, rows

pytestmark = pytest.mark.slow  # runs pytest sessions, one with -n 2

HELPERS = """
import pytest
import sqlalchemy as sa

def _table(c, name):
    return sa.Table(name, sa.MetaData(), autoload_with=c)

def names(url, table="user"):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            t = _table(c, table)
            return [r.name for r in c.execute(sa.select(t.c.name).order_by(t.c.id))]
    finally:
        engine.dispose()

def add(url, name, table="user"):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            return c.execute(_table(c, table).insert().values(name=name)).inserted_primary_key[0]
    finally:
        engine.dispose()

def rename_all(url, name, table="user"):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(_table(c, table).update().values(name=name))
    finally:
        engine.dispose()
"""


def _depth(url: str) -> int:
    with Cleaner(url) as cleaner:
        return cleaner.baseline_depth()


def test_scopes_nest_session_module_class(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(
        HELPERS
        + """
@pytest.fixture(scope="session", autouse=True)
def staff(cleandb_scope, cleandb_url):
    with cleandb_scope():
        add(cleandb_url, "session admin")
    yield
"""
    )
    pytester.makepyfile(
        test_a_nested="""
        import pytest
        from conftest import add, names, rename_all

        @pytest.fixture(scope="module", autouse=True)
        def categories(cleandb_scope, cleandb_url):
            with cleandb_scope():
                add(cleandb_url, "books", "category")
                add(cleandb_url, "music", "category")
            yield

        @pytest.fixture(scope="class")
        def members(cleandb_scope, cleandb_url):
            with cleandb_scope():
                assert add(cleandb_url, "member") == 2
            yield

        @pytest.mark.usefixtures("members")
        class TestClassScope:
            def test_1_sees_all_three_and_changes_them(self, cleandb_url):
                assert names(cleandb_url) == ["session admin", "member"]
                assert names(cleandb_url, "category") == ["books", "music"]
                rename_all(cleandb_url, "changed")
                rename_all(cleandb_url, "changed", "category")
                assert add(cleandb_url, "test's") == 3

            def test_2_sees_them_fresh(self, cleandb_url):
                assert names(cleandb_url) == ["session admin", "member"]
                assert names(cleandb_url, "category") == ["books", "music"]
                assert add(cleandb_url, "test's") == 3  # counters from the class scope's

        def test_3_after_the_class_its_rows_and_ids_are_gone(cleandb_url):
            assert names(cleandb_url) == ["session admin"]
            assert names(cleandb_url, "category") == ["books", "music"]
            assert add(cleandb_url, "again") == 2
            assert add(cleandb_url, "again", "category") == 3
        """,
        test_b_other_module="""
        from conftest import add, names

        def test_4_the_module_scope_ended(cleandb_url):
            assert names(cleandb_url) == ["session admin"]
            assert names(cleandb_url, "category") == []
            assert add(cleandb_url, "first category", "category") == 1
        """,
    )
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=4)
    assert rows(migrated, "user") == [] and rows(migrated, "category") == []
    assert insert(migrated, "user", name="after the run") == 1
    assert _depth(migrated) == 0


def test_two_modules_with_different_scoped_data(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(HELPERS)
    module = """
        import pytest
        from conftest import add, names, rename_all

        @pytest.fixture(scope="module", autouse=True)
        def seed(cleandb_scope, cleandb_url):
            with cleandb_scope():
                for name in {names!r}:
                    add(cleandb_url, name)
            yield

        def test_1_modifies_the_scoped_rows(cleandb_url):
            assert names(cleandb_url) == {names!r}
            rename_all(cleandb_url, "changed")
            add(cleandb_url, "extra")

        def test_2_sees_them_fresh(cleandb_url):
            assert names(cleandb_url) == {names!r}
            assert add(cleandb_url, "next") == {next_id}
        """
    pytester.makepyfile(
        test_one=module.format(names=["ann", "bob"], next_id=3),
        test_two=module.format(names=["cy"], next_id=2),
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=4)
    assert rows(migrated, "user") == [] and _depth(migrated) == 0


def test_a_fixture_that_fails_half_way_leaves_nothing_behind(
    pytester: pytest.Pytester, migrated: str
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_a_broken="""
        import pytest
        from conftest import add

        @pytest.fixture(scope="module")
        def half_seeded(cleandb_scope, cleandb_url):
            with cleandb_scope():
                add(cleandb_url, "written before the failure")
                add(cleandb_url, "books", "category")
                raise RuntimeError("the catalog file is missing")
            yield

        @pytest.fixture(scope="module")
        def fails_after_its_scope(cleandb_scope, cleandb_url):
            with cleandb_scope():
                add(cleandb_url, "seeded")
            raise RuntimeError("failed after the block")

        def test_needs_the_seed(half_seeded):
            pass

        def test_needs_the_other(fails_after_its_scope):
            pass
        """,
        test_b_next="""
        from conftest import add, names

        def test_nothing_of_the_failed_seeds_is_left(cleandb_url):
            assert names(cleandb_url) == [] and names(cleandb_url, "category") == []
            assert add(cleandb_url, "first") == 1
        """,
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*the catalog file is missing*"])
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert rows(migrated, "user") == [] and rows(migrated, "category") == []
    assert _depth(migrated) == 0


def test_a_function_scoped_seed_and_misuse_in_a_test(
    pytester: pytest.Pytester, migrated: str
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_use="""
        import pytest
        from conftest import add, names

        @pytest.fixture
        def per_test(cleandb_scope, cleandb_url):
            with cleandb_scope():
                add(cleandb_url, "per test")
            add(cleandb_url, "after the block")  # not in the scope: reset after the test
            yield

        def test_1_function_scope(per_test, cleandb_url):
            assert names(cleandb_url) == ["per test", "after the block"]

        def test_2_nothing_left(cleandb_url):
            assert names(cleandb_url) == []

        def test_3_in_a_test_body(cleandb_scope):
            with cleandb_scope():
                pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*cleandb_scope() works in the body of a fixture*"])
    assert rows(migrated, "user") == [] and _depth(migrated) == 0


def test_scopes_left_open_by_a_killed_run_end_at_the_next_start(
    pytester: pytest.Pytester, migrated: str
) -> None:
    with Cleaner(migrated) as cleaner:  # a run killed inside two scopes
        insert(migrated, "user", name="outer seed")
        cleaner.push_baseline()
        insert(migrated, "user", name="inner seed")
        cleaner.push_baseline()
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_next_run="""
        from conftest import add, names

        def test_starts_from_the_baseline(cleandb_url):
            assert names(cleandb_url) == []
            assert add(cleandb_url, "first") == 1
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cleandb: ended 2 scoped baseline(s) left open in *"])
    assert rows(migrated, "user") == [] and _depth(migrated) == 0


def test_under_xdist_each_worker_has_its_own_scopes(
    pytester: pytest.Pytester, migrated: str
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(HELPERS)
    module = """
        import pytest
        from conftest import add, names, rename_all

        @pytest.fixture(scope="module", autouse=True)
        def seed(cleandb_scope, cleandb_url):
            with cleandb_scope():
                add(cleandb_url, {name!r})
            yield

        @pytest.mark.parametrize("n", range(6))
        def test_sees_its_module_seed_fresh(cleandb_url, n):
            assert names(cleandb_url) == [{name!r}]
            rename_all(cleandb_url, "changed")
            assert add(cleandb_url, "test's") == 2
        """
    pytester.makepyfile(
        test_one=module.format(name="module one"), test_two=module.format(name="module two")
    )
    result = pytester.runpytest("-p", "no:randomly", "-n", "2")
    result.assert_outcomes(passed=12)
    assert rows(migrated, "user") == [] and _depth(migrated) == 0


def test_scopes_left_open_end_before_cleandb_migrate_runs_a_pending_step(
    pytester: pytest.Pytester, db_url: str
) -> None:
    upgrade(db_url, "0001")
    upgrade(db_url, "cleandb@head")
    with Cleaner(db_url) as cleaner:  # a run killed inside a scope
        insert(db_url, "user", name="seed")
        cleaner.push_baseline()
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {db_url}\ncleandb_migrate = {ROOT / 'alembic.ini'}:cleandb\n"
    )
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_next_run="""
        import sqlalchemy as sa
        from conftest import add, names

        def test_migrated_from_the_baseline(cleandb_url):
            assert names(cleandb_url) == []
            assert add(cleandb_url, "first") == 1
            engine = sa.create_engine(cleandb_url)
            with engine.connect() as c:  # (0002 added the 4th)
                assert c.execute(sa.text("SELECT count(*) FROM lookup_status")).scalar() == 4
            engine.dispose()
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cleandb: ended 1 scoped baseline(s) left open in *"])
    assert rows(db_url, "user") == [] and _depth(db_url) == 0


def test_a_reused_worker_copy_with_scopes_left_open_is_ended_with_a_warning(
    pytester: pytest.Pytester, migrated: str
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\ncleandb_worker_dbs = reuse\n")
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_run="""
        import pytest
        from conftest import add, names

        @pytest.mark.parametrize("n", range(4))
        def test_starts_from_the_baseline(cleandb_url, n):
            assert names(cleandb_url) == []
            assert add(cleandb_url, "first") == 1
        """
    )
    copies = [worker_url(migrated, w) for w in ("gw0", "gw1")]
    try:
        pytester.runpytest("-n", "2").assert_outcomes(passed=4)
        for copy in copies:  # a run killed inside a scope, in each kept copy
            with Cleaner(copy) as cleaner:
                insert(copy, "user", name="seed")
                cleaner.push_baseline()
        result = pytester.runpytest("-n", "2", "-W", "always")
        result.assert_outcomes(passed=4, warnings=2)
        result.stdout.fnmatch_lines(["*ended 1 scoped baseline(s) left open in *_gw*"])
        for copy in copies:
            assert rows(copy, "user") == [] and _depth(copy) == 0
    finally:
        _xdist.drop(copies)
