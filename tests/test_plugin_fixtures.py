"""What a user's tests get from the plugin, on each backend: the marker that skips the reset,
the fixture that resets before a test too, the URL fixtures and variable, the header."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from alembic_cleandb import SCHEMA_VERSION
from conftest import upgrade

pytestmark = pytest.mark.slow  # runs pytest sessions, some with -n 2

HELPERS = """
import os

import pytest
import sqlalchemy as sa

def users(url):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            user = sa.Table("user", sa.MetaData(), autoload_with=c)
            return [r.name for r in c.execute(sa.select(user.c.name).order_by(user.c.id))]
    finally:
        engine.dispose()

def add_user(url, name):
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            user = sa.Table("user", sa.MetaData(), autoload_with=c)
            c.execute(user.insert().values(name=name))
    finally:
        engine.dispose()
"""


def test_cleandb_skip_and_cleandb_clean_before(pytester: pytest.Pytester, migrated: str) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(
        HELPERS
        + """
@pytest.fixture
def writes_in_setup(cleandb_url):
    add_user(cleandb_url, "from a fixture")
"""
    )
    pytester.makepyfile(
        test_flow="""
        import pytest
        from conftest import add_user, users

        @pytest.mark.cleandb_skip
        def test_1_write_without_reset(cleandb_url):
            add_user(cleandb_url, "kept")

        @pytest.mark.cleandb_skip
        def test_2_the_row_is_still_there(cleandb_url):
            assert users(cleandb_url) == ["kept"]

        def test_3_clean_before_starts_from_the_baseline(cleandb_clean_before, cleandb_url):
            assert users(cleandb_url) == []
            add_user(cleandb_url, "three")

        def test_4_the_reset_after_test_3_ran(cleandb_url):
            assert users(cleandb_url) == []

        @pytest.mark.cleandb_skip
        def test_5_fixture_writes_survive_without_clean_before(writes_in_setup, cleandb_url):
            assert users(cleandb_url) == ["from a fixture"]

        def test_6_clean_before_after_the_writing_fixture(
            writes_in_setup, cleandb_clean_before, cleandb_url
        ):
            assert users(cleandb_url) == []

        class TestMarkedClass:
            pytestmark = pytest.mark.cleandb_skip

            def test_7_write(self, cleandb_url):
                add_user(cleandb_url, "class")

            def test_8_still_there(self, cleandb_url):
                assert users(cleandb_url) == ["class"]
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=8)
    # The marker is registered (no "unknown marker" warning under --strict-markers).
    pytester.runpytest("-p", "no:randomly", "--strict-markers").assert_outcomes(
        passed=8
    )


def test_url_fixtures_and_variable_before_any_fixture(
    pytester: pytest.Pytester, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_DATABASE", "stale value from the shell")
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\ncleandb_url_env = APP_DATABASE\n")
    pytester.makeconftest(
        HELPERS
        + """
SEEN_AT_CONFIGURE = []

def pytest_configure(config):
    SEEN_AT_CONFIGURE.append(os.environ["APP_DATABASE"])

@pytest.fixture(scope="session", autouse=True)
def app_engine():
    # A session fixture that builds the app's engine from the environment, first of all.
    engine = sa.create_engine(os.environ["APP_DATABASE"])
    yield engine
    engine.dispose()
"""
    )
    pytester.makepyfile(
        test_url=f"""
        import os
        from conftest import SEEN_AT_CONFIGURE, add_user, users

        AT_IMPORT = os.environ["APP_DATABASE"]

        def test_everyone_agrees(cleandb_url, cleandb_urls, app_engine):
            assert cleandb_url == {migrated!r}
            assert cleandb_urls == [cleandb_url]
            assert AT_IMPORT == os.environ["APP_DATABASE"] == cleandb_url
            assert SEEN_AT_CONFIGURE == [cleandb_url]
            assert str(app_engine.url.render_as_string(hide_password=False)) == cleandb_url

        def test_the_app_engine_is_reset_too(app_engine, cleandb_url):
            with app_engine.begin() as c:
                c.exec_driver_sql("DELETE FROM lookup_status")
            add_user(cleandb_url, "x")

        def test_after(app_engine, cleandb_url):
            with app_engine.begin() as c:
                assert c.exec_driver_sql("SELECT COUNT(*) FROM lookup_status").scalar() == 4
            assert users(cleandb_url) == []
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)
    # The session over, the variable is what it was: a session run inside another process
    # (here pytester's, in this one) leaves no test database's URL behind.
    assert os.environ["APP_DATABASE"] == "stale value from the shell"


def test_header_names_each_database_without_password(
    pytester: pytest.Pytester, migrated: str, backend: str
) -> None:
    url = sa.make_url(migrated)
    if backend == "postgresql":  # trust authentication ignores the password: put one in
        url = url.set(password="s3cret-pw")
    shown = url.render_as_string(hide_password=False)
    pytester.makeini(f"[pytest]\ncleandb_urls = {shown}\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    where = url.database if backend == "sqlite" else f"{url.host}:{url.port}/{url.database}"
    result.stdout.fnmatch_lines(
        [
            f"cleandb: {where} ({backend}, tracking schema v{SCHEMA_VERSION}, "
            "alembic 0002,cleandb_0005)"
        ]
    )
    assert "s3cret" not in result.stdout.str() + result.stderr.str()


def test_two_databases(pytester: pytest.Pytester, databases) -> None:
    first, second = databases.create(), databases.create()
    upgrade(first)
    upgrade(second)
    pytester.makeini(f"[pytest]\ncleandb_urls =\n    {first}\n    {second}\n")
    pytester.makeconftest(HELPERS)
    pytester.makepyfile(
        test_two="""
        import pytest
        from conftest import add_user, users

        @pytest.mark.parametrize("i", range(3))
        def test_both(i, cleandb_urls):
            assert len(cleandb_urls) == 2
            for url in cleandb_urls:
                assert users(url) == []
                add_user(url, str(i))
        """
    )
    for args in ([], ["-n", "2"]):
        result = pytester.runpytest(*args)
        result.assert_outcomes(passed=3)
        assert len([x for x in result.outlines if x.startswith("cleandb: ")]) == 2 + len(args) // 2


def test_an_unreachable_database_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, backend: str
) -> None:
    url = {
        "postgresql": "postgresql://postgres:hunter2@127.0.0.1:1/nowhere_test",
        "mariadb": "mariadb://root:hunter2@127.0.0.1:1/nowhere_test",
        "sqlite": "sqlite:///no/such/dir/nowhere_test.db",
    }[backend]
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # SQLite: the file does not exist (the library never creates an empty one).
    result.stderr.fnmatch_lines(["ERROR: alembic-cleandb: *nowhere_test*"])
    assert "hunter2" not in result.stdout.str() + result.stderr.str()
