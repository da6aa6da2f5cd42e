"""A small user project run through the plugin (entry point pytest11), on each backend."""

from __future__ import annotations

import uuid

import pytest

from conftest import upgrade

USER_TESTS = """
import sqlalchemy as sa

def _insert_user(url, name):
    engine = sa.create_engine(url)
    with engine.begin() as c:
        table = sa.Table("user", sa.MetaData(), autoload_with=c)
        new_id = c.execute(table.insert().values(name=name)).inserted_primary_key[0]
        total = c.execute(sa.select(sa.func.count()).select_from(table)).scalar()
    engine.dispose()
    return new_id, total

def test_user_schema1(cleandb_url_for_app):
    assert _insert_user(cleandb_url_for_app, "Fran Clan") == (1, 1)

def test_user_schema2(cleandb_url_for_app):
    assert _insert_user(cleandb_url_for_app, "Stan Clan") == (1, 1)

def test_seed_rows_survive_changes(cleandb_url_for_app):
    engine = sa.create_engine(cleandb_url_for_app)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM lookup_status"))
    engine.dispose()

def test_seed_rows_are_back(cleandb_url_for_app):
    engine = sa.create_engine(cleandb_url_for_app)
    with engine.begin() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM lookup_status")).scalar() == 4
    engine.dispose()
"""

CONFTEST = """
import os
import pytest

@pytest.fixture
def cleandb_url_for_app():
    return os.environ["APP_URL"]
"""


@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "reversed"])
def test_plugin_resets_after_every_test(
    pytester: pytest.Pytester, migrated: str, reverse: bool, monkeypatch
) -> None:
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makeconftest(CONFTEST)
    source = USER_TESTS
    if reverse:  # the same two "id == 1" tests, the other way round
        source = (
            source.replace("test_user_schema1", "test_tmp")
            .replace("test_user_schema2", "test_user_schema1")
            .replace("test_tmp", "test_user_schema2")
        )
    pytester.makepyfile(test_app=source)
    monkeypatch.setenv("APP_URL", migrated)
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=4)


def test_without_the_plugin_the_second_test_sees_the_first_ones_row(
    pytester: pytest.Pytester, migrated: str, monkeypatch
) -> None:
    # The control experiment: the same project with the plugin disabled fails.
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=USER_TESTS)
    monkeypatch.setenv("APP_URL", migrated)
    result = pytester.runpytest("-p", "no:cleandb")
    result.assert_outcomes(passed=2, failed=2)


@pytest.mark.slow
def test_urls_from_environment_and_command_line_and_fixture(
    pytester: pytest.Pytester, migrated: str, monkeypatch
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=USER_TESTS)
    monkeypatch.setenv("APP_URL", migrated)
    monkeypatch.setenv("CLEANDB_URLS", migrated)
    pytester.runpytest().assert_outcomes(passed=4)
    monkeypatch.delenv("CLEANDB_URLS")
    pytester.runpytest(f"--cleandb-url={migrated}").assert_outcomes(passed=4)
    pytester.makeconftest(
        CONFTEST + "\n@pytest.fixture(scope='session')\ndef cleandb_urls():\n"
        "    return [os.environ['APP_URL']]\n"
    )
    pytester.runpytest().assert_outcomes(passed=4)


@pytest.mark.slow
def test_plugin_refuses_a_non_test_database(
    pytester: pytest.Pytester, databases, monkeypatch
) -> None:
    prod_app = f"prod_app_{uuid.uuid4().hex[:6]}"  # (unique: xdist workers share the server)
    url = databases.create(prod_app)
    upgrade(url, "heads", cleandb=False)
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE", raising=False)
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*refuses to reset database*{prod_app}*CLEANDB_ALLOW_DATABASE*"])
    assert "password" not in result.stdout.str().lower()
