"""docs/recipes.md: every code block is either part of a file of examples/ (which
test_examples.py runs) or run here, on a real server; plus alembic_cleandb.migrate() and the
check that cleandb_migrate never migrates a database other than the test database."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config

import alembic_cleandb
from alembic_cleandb.__main__ import main as cli
from alembic_cleandb.backends import backend_for_url
from conftest import ROOT

pytestmark = pytest.mark.slow  # runs the recipes' pytest and commands in other processes

RECIPES = (ROOT / "docs" / "recipes.md").read_text()
BLOCKS = re.findall(r"<!-- (file|run): (\S+) -->\n```\w+\n(.*?)```", RECIPES, re.S)
PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite"], indirect=True)

FIRST_USER = """
import pytest
import sqlalchemy as sa

@pytest.mark.parametrize("i", range(3))
def test_first_user(i, cleandb_url):
    engine = sa.create_engine(cleandb_url)
    try:
        with engine.begin() as c:
            user = sa.Table("user", sa.MetaData(), autoload_with=c)
            assert c.execute(user.insert().values(name="x")).inserted_primary_key[0] == 1
    finally:
        engine.dispose()
"""


def run_block(name: str) -> str:
    (found,) = [text for kind, where, text in BLOCKS if kind == "run" and where == name]
    return found


def repo_alembic_ini(directory: Path) -> Path:
    """The repository's alembic.ini, usable from another directory."""
    ini = directory / "alembic.ini"
    ini.write_text((ROOT / "alembic.ini").read_text().replace("%(here)s", str(ROOT)))
    return ini


def test_every_code_block_is_marked_and_covered() -> None:
    assert RECIPES.count("```") == 2 * len(BLOCKS)
    assert {where for kind, where, _ in BLOCKS if kind == "run"} == {
        "outside-server",
        "sqlmodel-env",
        "sqlmodel-tests",
        "pytest-postgresql",
    }


@pytest.mark.parametrize(
    ("where", "text"), [(w, t) for k, w, t in BLOCKS if k == "file"], ids=lambda v: str(v)[:40]
)
def test_file_blocks_are_part_of_the_examples(where: str, text: str) -> None:
    """The example files are run by test_examples.py; the page shows them verbatim."""
    assert text in (ROOT / where).read_text(), where


@PG
def test_outside_server_recipe(pytester: pytest.Pytester, databases) -> None:
    url = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_test")
    ini = run_block("outside-server").replace("postgresql://postgres@127.0.0.1:5432/app_test", url)
    assert ini != run_block("outside-server")
    repo_alembic_ini(pytester.path)
    pytester.makeini(ini)
    pytester.makepyfile(
        test_env="""
import os

def test_database_url_is_the_test_database(cleandb_url):
    assert os.environ["DATABASE_URL"] == cleandb_url
"""
        + FIRST_USER
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=4)
    pytester.runpytest("-n", "2").assert_outcomes(passed=4)


SQLMODEL_MODELS = """
from typing import Optional

from sqlmodel import Field, SQLModel


class Hero(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str
"""

SQLMODEL_MIGRATION = '''
"""heroes"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "hero",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False),
    )


def downgrade():
    op.drop_table("hero")
'''


@SERVERS
def test_sqlmodel_recipe(
    pytester: pytest.Pytester, databases, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_test")
    monkeypatch.chdir(pytester.path)
    cli(["init", "migrations"])
    (pytester.path / "models.py").write_text(SQLMODEL_MODELS)
    (pytester.path / "migrations" / "versions" / "0001_heroes.py").write_text(SQLMODEL_MIGRATION)
    env = "\n".join(
        [
            "from sqlalchemy import create_engine, pool",
            "from alembic import context as _context",
            "_url = _context.config.get_main_option('sqlalchemy.url')",
            "_engine = create_engine(_url, poolclass=pool.NullPool)",
            "with _engine.connect() as connection:",
            textwrap.indent(run_block("sqlmodel-env"), "    "),
            "    with context.begin_transaction():",
            "        context.run_migrations()",
        ]
    )
    (pytester.path / "migrations" / "env.py").write_text(env)
    ini = run_block("outside-server").replace("postgresql://postgres@127.0.0.1:5432/app_test", url)
    pytester.makeini(ini + "pythonpath = .\n")
    pytester.makepyfile(test_heroes=run_block("sqlmodel-tests"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=2)


def _database_exists(name: str) -> bool:
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    try:
        with engine.connect() as c:
            sql = "SELECT 1 FROM pg_database WHERE datname = %(n)s"
            return c.exec_driver_sql(sql, {"n": name}).first() is not None
    finally:
        engine.dispose()


@PG
def test_pytest_postgresql_recipe(pytester: pytest.Pytester, databases) -> None:
    """postgresql_noproc + DatabaseJanitor + alembic_cleandb.migrate(), with and without
    xdist; the janitor drops each database at the end."""
    names = ["app_test_main", "app_test_gw0", "app_test_gw1"]
    databases.created.extend(names)  # dropped after the test if anything is left
    databases.drop_all()
    repo_alembic_ini(pytester.path)
    pytester.makeconftest(run_block("pytest-postgresql"))
    pytester.makepyfile(test_app=FIRST_USER)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)
    pytester.runpytest("-n", "2").assert_outcomes(passed=3)
    assert not any(_database_exists(n) for n in names)


# -- alembic_cleandb.migrate() ----------------------------------------------------------------


@SERVERS
def test_migrate_creates_migrates_and_tracks(databases, tmp_path: Path) -> None:
    url = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_test")
    if databases.backend != "sqlite":
        backend_for_url(url).drop(sa.make_url(url))  # migrate() creates it
    assert alembic_cleandb.migrate(url, str(repo_alembic_ini(tmp_path))) == url
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            c.execute(sa.text("UPDATE lookup_status SET label = 'x'"))
            versions = {r[0] for r in c.exec_driver_sql("SELECT version_num FROM alembic_version")}
        assert alembic_cleandb.REVISION in versions  # the one more row of a tracked database
        assert alembic_cleandb.clean(url) == 1
        # Again, with a Config object and a sqlalchemy.URL: nothing to do, nothing lost.
        config = Config(str(repo_alembic_ini(tmp_path)))
        assert alembic_cleandb.migrate(sa.make_url(url), config) == url
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM lookup_status")).scalar() == 4
    finally:
        engine.dispose()


def test_migrate_refuses_a_missing_ini_and_a_non_test_database(tmp_path: Path) -> None:
    with pytest.raises(alembic_cleandb.ConfigurationError, match="which is not a file"):
        alembic_cleandb.migrate(f"sqlite:///{tmp_path / 'a_test.db'}", tmp_path / "none.ini")
    with pytest.raises(alembic_cleandb.UnsafeDatabaseError, match="refuses to"):
        alembic_cleandb.migrate(f"sqlite:///{tmp_path / 'prod.db'}", repo_alembic_ini(tmp_path))


def test_migrate_takes_a_flask_migrate_ini(tmp_path: Path, monkeypatch) -> None:
    """migrations/alembic.ini without script_location: the folder beside env.py is used."""
    app = tmp_path / "flask_app"
    shutil.copytree(
        ROOT / "examples" / "flask_app", app, ignore=shutil.ignore_patterns("__pycache__", "*.db")
    )
    monkeypatch.chdir(app)
    monkeypatch.syspath_prepend(str(app))
    url = f"sqlite:///{app / 'flaskr_test.db'}"
    alembic_cleandb.migrate(url, "migrations/alembic.ini", url_env="DATABASE_URL")
    assert "DATABASE_URL" not in os.environ or os.environ["DATABASE_URL"] != url
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM notice")).scalar() == 1
            c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('x')"))
        assert alembic_cleandb.clean(url) == 1
    finally:
        engine.dispose()


# -- cleandb_migrate never migrates another database ------------------------------------------


def _shop(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / "shop"
    if not copy.exists():
        shutil.copytree(
            ROOT / "examples" / "shop", copy, ignore=shutil.ignore_patterns("__pycache__", "*.db")
        )
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "CLEANDB_")) and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", *args],
        cwd=copy,
        env={**clean_env, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return set(sa.inspect(c).get_table_names())
    finally:
        engine.dispose()


@SERVERS
def test_env_py_reading_database_url_migrates_the_test_database(tmp_path: Path, databases) -> None:
    """The shop's env.py prefers DATABASE_URL; the shell's DATABASE_URL names "production".
    With cleandb_url_env = DATABASE_URL the plugin points it at the test database first; without
    it, env_options() stops env.py before any migration step on the other database."""
    test = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_test")
    production = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_prod")
    # The shop's own settings: cleandb_url_env = DATABASE_URL.
    result = _shop(tmp_path, CLEANDB_URLS=test, DATABASE_URL=production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "order" in _tables(test)
    assert _tables(production) <= {"alembic_version"}
    # Without cleandb_url_env, env.py would follow DATABASE_URL to production: stopped.
    result = _shop(
        tmp_path, "--override-ini=cleandb_url_env=", CLEANDB_URLS=test, DATABASE_URL=production
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "env.py connected to database" in result.stderr
    assert "not to the test database" in result.stderr and "cleandb_url_env" in result.stderr
    assert _tables(production) <= {"alembic_version"}
    engine = sa.create_engine(production)
    try:
        with engine.connect() as c:
            if "alembic_version" in _tables(production):
                assert c.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar() == 0
    finally:
        engine.dispose()


def _flask(app: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "CLEANDB_", "FLASK_")) and k != "DATABASE_URL"
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flaskr", "db", *args],
        cwd=app,
        env={**clean_env, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@SERVERS
def test_flask_db_upgrade_installs_tracking_when_testing(tmp_path: Path, databases) -> None:
    """`FLASK_TESTING=1 flask db upgrade heads` (the @migrate.configure callback) installs
    tracking; a plain `flask db upgrade` on that database says what to run."""
    app = tmp_path / "flask_app"
    shutil.copytree(
        ROOT / "examples" / "flask_app", app, ignore=shutil.ignore_patterns("__pycache__", "*.db")
    )
    url = databases.create(f"recipes_{uuid.uuid4().hex[:8]}_test")
    result = _flask(app, "upgrade", "heads", FLASK_TESTING="1", DATABASE_URL=url)
    assert result.returncode == 0, result.stdout + result.stderr
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            versions = {r[0] for r in c.exec_driver_sql("SELECT version_num FROM alembic_version")}
            assert versions == {"0001", alembic_cleandb.REVISION}
            c.execute(sa.text("DELETE FROM notice"))
        assert alembic_cleandb.clean(url) == 1
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM notice")).scalar() == 1
    finally:
        engine.dispose()
    result = _flask(app, "upgrade", DATABASE_URL=url)
    assert result.returncode != 0
    assert f"Can't locate revision identified by '{alembic_cleandb.REVISION}'" in result.stderr
    assert "FLASK_TESTING=1 flask db upgrade heads" in result.stderr
