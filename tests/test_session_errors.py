"""Every failure at session start is a usage error (``ERROR: ...``, exit code 4) that says what
to fix - never an INTERNALERROR - and a wrong ``path_separator`` never applies nothing quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.util import CommandError

import alembic_cleandb
from conftest import ROOT

pytestmark = pytest.mark.slow  # runs pytest sessions, some with -n 2
# (in subprocesses: what a user's terminal shows of a session-start error is the point)

TESTS = """
def test_nothing():
    pass
"""

SECTION = """[{section}]
script_location = {root}/tests/migrations
{separator}
version_locations = {root}/tests/migrations/versions alembic_cleandb:versions
"""


def _ini(path: Path, separator: str, section: str = "cleandb") -> Path:
    path.write_text(SECTION.format(section=section, root=ROOT, separator=separator))
    return path


def _usage_error(result: pytest.RunResult, *patterns: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output, output
    result.stderr.fnmatch_lines([f"ERROR: *{p}*" for p in patterns])


def _run(pytester: pytest.Pytester, url: str, migrate: str) -> pytest.RunResult:
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = {migrate}\n")
    pytester.makepyfile(test_it=TESTS)
    return pytester.runpytest_subprocess()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_malformed_ini_file(pytester: pytest.Pytester, databases) -> None:
    (pytester.path / "alembic.ini").write_text("[cleandb\nscript_location = x\n")
    result = _run(pytester, databases.create(), "alembic.ini:cleandb")
    _usage_error(result, "alembic.ini* is not a valid ini file*")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_alembic_command_error(pytester: pytest.Pytester, databases) -> None:
    (pytester.path / "alembic.ini").write_text("[cleandb]\nscript_location = %(here)s/nowhere\n")
    result = _run(pytester, databases.create(), "alembic.ini:cleandb")
    _usage_error(result, "migrating * with *alembic.ini* failed: *nowhere*")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_exception_raised_by_env_py(pytester: pytest.Pytester, databases) -> None:
    migrations = pytester.mkdir("migrations")
    (migrations / "versions").mkdir()
    (migrations / "env.py").write_text(
        "import os\nraise RuntimeError('set APP_SECRET before migrating')\n"
    )
    (pytester.path / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/migrations\n"
    )
    result = _run(pytester, databases.create(), "alembic.ini")
    _usage_error(
        result, "RuntimeError: set APP_SECRET before migrating (at *env.py:2). Fix it there*"
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_failure_while_copying_worker_databases(pytester: pytest.Pytester, databases) -> None:
    url = databases.create("app_test")
    from conftest import upgrade

    upgrade(url)
    # Something that is not a database file sits where worker gw0's copy goes.
    blocker = databases.tmp_path / "app_test_gw0.db"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n")
    pytester.makepyfile(test_it=TESTS)
    result = pytester.runpytest_subprocess("-n", "2")
    # Copies are made while the workers start: the run stops with exit code 4 and the message.
    _usage_error(result, "cannot copy * for pytest-xdist worker gw0: *Is a directory*")


# Alembic < 1.16 reads version_path_separator only (path_separator = os is ignored there);
# 1.16 and later read path_separator, and version_path_separator when it is absent.
MODERN = hasattr(Config, "get_version_locations_list")
SEPARATORS = ["version_path_separator = os"] + (["path_separator = os"] if MODERN else [])


@pytest.mark.parametrize("setting", SEPARATORS)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_path_separator_os_in_cleandb_migrate(
    pytester: pytest.Pytester, databases, setting: str
) -> None:
    _ini(pytester.path / "alembic.ini", setting)
    result = _run(pytester, databases.create(), "alembic.ini:cleandb")
    _usage_error(result, "version location(s) * do not exist*path_separator = space*")


@pytest.mark.parametrize("setting", SEPARATORS)
def test_enable_refuses_path_separator_os(tmp_path: Path, setting: str) -> None:
    ini = _ini(tmp_path / "alembic.ini", setting)
    config = Config(str(ini), ini_section="cleandb")
    with pytest.raises(CommandError, match="do not exist.*path_separator = space"):
        alembic_cleandb.enable(config)


@pytest.mark.parametrize("setting", SEPARATORS)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_alembic_command_line_with_path_separator_os_fails(
    db_url: str, tmp_path: Path, setting: str
) -> None:
    ini = _ini(tmp_path / "alembic.ini", setting)
    ini.write_text(ini.read_text() + f"sqlalchemy.url = {db_url}\n")
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-n", "cleandb", "upgrade", "heads"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url},
        timeout=120,
    )
    assert result.returncode != 0, result.stdout + result.stderr
    assert "path_separator = space" in result.stdout + result.stderr


RELATIVE_TESTS = """
import os
import sqlalchemy as sa

def test_relative(cleandb_url):
    assert cleandb_url == "sqlite:///app_test.db"
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    with engine.begin() as c:
        # The seed rows the migrations wrote are in the file the application opens.
        assert c.execute(sa.text("SELECT COUNT(*) FROM lookup_status")).scalar() == 4
        c.execute(sa.text("INSERT INTO \\"user\\" (name) VALUES ('x')"))
    engine.dispose()

def test_reset_the_same_file(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM \\"user\\"")).scalar() == 0
    engine.dispose()
"""


def test_relative_sqlite_url_is_one_file_for_migrations_reset_and_app(
    pytester: pytest.Pytester,
) -> None:
    # Run from a subdirectory: the ini file is above, the database is made where pytest runs.
    (pytester.path / "alembic.ini").write_text(
        (ROOT / "alembic.ini").read_text().replace("%(here)s", str(ROOT))
    )
    pytester.makeini(
        "[pytest]\ncleandb_urls = sqlite:///app_test.db\ncleandb_url_env = DATABASE_URL\n"
        "cleandb_migrate = alembic.ini:cleandb\n"
    )
    sub = pytester.mkdir("sub")
    (sub / "test_rel.py").write_text(RELATIVE_TESTS)
    monkey = pytest.MonkeyPatch()
    monkey.chdir(sub)
    try:
        result = pytester.runpytest_subprocess(str(sub / "test_rel.py"), "-p", "no:randomly")
    finally:
        monkey.undo()
    result.assert_outcomes(passed=2)
    assert (sub / "app_test.db").is_file() and not (pytester.path / "app_test.db").exists()
