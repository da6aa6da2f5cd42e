"""cleandb_migrate: the plugin creates a missing test database and runs `upgrade heads` with
the cleandb branch, once per run, before any test or worker copy."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from alembic_cleandb import REVISION
from alembic_cleandb.backends import backend_for_url
from conftest import ROOT

pytestmark = pytest.mark.slow  # runs pytest sessions, some with -n 2

TESTS = """
import pytest
import sqlalchemy as sa

@pytest.mark.parametrize("i", range(4))
def test_first_user(i, cleandb_url):
    engine = sa.create_engine(cleandb_url)
    try:
        with engine.begin() as c:
            user = sa.Table("user", sa.MetaData(), autoload_with=c)
            assert c.execute(user.insert().values(name="x")).inserted_primary_key[0] == 1
            status = sa.Table("lookup_status", sa.MetaData(), autoload_with=c)
            assert c.execute(sa.select(sa.func.count()).select_from(status)).scalar() == 4
    finally:
        engine.dispose()
"""


def _new_url(databases) -> str:
    """The URL of a test database that does not exist yet (dropped after the test)."""
    name = f"cleandb_mig_{uuid.uuid4().hex[:8]}_test"
    if databases.backend == "sqlite":
        return f"sqlite:///{databases.tmp_path / (name + '.db')}"
    url = databases.create(name)
    backend_for_url(url).drop(sa.make_url(url))
    return url


@pytest.mark.parametrize("section", ["cleandb", None], ids=["cleandb-section", "enable"])
def test_migrate_creates_and_migrates(pytester: pytest.Pytester, databases, section) -> None:
    url = _new_url(databases)
    assert not backend_for_url(url).exists(sa.make_url(url))
    target = f"{ROOT / 'alembic.ini'}" + (f":{section}" if section else "")
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = {target}\n")
    pytester.makepyfile(test_mig=TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"cleandb: * alembic 0002,{REVISION})"])
    assert backend_for_url(url).exists(sa.make_url(url))
    # Again, now with nothing to do, and with workers copying the migrated database.
    pytester.runpytest("-n", "2").assert_outcomes(passed=4)


def test_migrate_relative_to_the_ini_file(pytester: pytest.Pytester, databases) -> None:
    url = _new_url(databases)
    sub = pytester.mkdir("sub")
    (sub / "alembic.ini").write_text(
        (ROOT / "alembic.ini").read_text().replace("%(here)s", str(ROOT))
    )
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = sub/alembic.ini\n")
    pytester.makepyfile(test_mig=TESTS)
    pytester.runpytest().assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing.ini", "*cleandb_migrate names *missing.ini*, which is not a file*"),
        (f"{ROOT / 'alembic.ini'}:nosuch", "*alembic.ini* has no [[]nosuch] section*"),
    ],
)
def test_migrate_errors(pytester: pytest.Pytester, databases, target: str, message: str) -> None:
    url = _new_url(databases)
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = {target}\n")
    pytester.makepyfile(test_mig=TESTS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_migrate_never_creates_a_database_without_test_in_its_name(
    pytester: pytest.Pytester, databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE", raising=False)
    url = _new_url(databases).replace("_test", "_prod")
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = {ROOT / 'alembic.ini'}:cleandb\n"
    )
    pytester.makepyfile(test_mig=TESTS)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: alembic-cleandb refuses to create database *_prod*"])
    assert not backend_for_url(url).exists(sa.make_url(url))
