"""Async Alembic environments: ``env_options()`` in the env.py of ``alembic init -t async``,
``python -m alembic_cleandb init --async``, and ``cleandb_migrate`` with an async URL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import alembic_cleandb
from alembic_cleandb.__main__ import DEMO_MIGRATION, main
from dbutil import count, execute, rows

pytestmark = pytest.mark.slow  # runs alembic and pytest in other processes

ROOT = Path(__file__).resolve().parent.parent
ASYNC_DRIVER = {
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "mariadb": "mysql+asyncmy",
}

LATER_MIGRATION = '''"""a table created after tracking was installed"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("note", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("body", sa.String(20)))


def downgrade():
    op.drop_table("note")
'''

CLEANDB_SECTION = """
[cleandb]
script_location = %(here)s/migrations
prepend_sys_path = .
path_separator = space
version_locations = %(here)s/migrations/versions alembic_cleandb:versions
sqlalchemy.url = {url}
"""


def _async_url(url: str, backend: str) -> str:
    parsed = sa.make_url(url).set(drivername=ASYNC_DRIVER[backend])
    return parsed.render_as_string(hide_password=False)


def _alembic(cwd: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _wire(env: Path) -> None:
    """What the README's step 1 asks of an env.py: the import and ``**env_options()``."""
    text = env.read_text()
    text = text.replace(
        "from alembic import context\n", "from alembic import context\n\nimport alembic_cleandb\n"
    )
    old = "context.configure(connection=connection, target_metadata=target_metadata)"
    assert old in text
    text = text.replace(old, old[:-1] + ", **alembic_cleandb.env_options())")
    env.write_text(text)


def _check_resets(url: str, app_url: str) -> None:
    execute(
        url,
        "INSERT INTO orders (status_id) VALUES (1)",
        "UPDATE status SET name = 'x'",
        "INSERT INTO note (body) VALUES ('n')",
    )
    assert alembic_cleandb.clean(app_url) == 3
    assert rows(url, "status") == [(1, "new"), (2, "paid")]
    assert count(url, "orders") == 0 and count(url, "note") == 0


@pytest.mark.parametrize("backend", ["postgresql", "sqlite", "mariadb"], indirect=True)
def test_env_options_in_the_env_of_alembic_init_async(
    db_url: str, backend: str, tmp_path: Path
) -> None:
    url = _async_url(db_url, backend)
    _alembic(tmp_path, "init", "-t", "async", "migrations")
    _wire(tmp_path / "migrations" / "env.py")
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text() + CLEANDB_SECTION.format(url=url.replace("%", "%%")))
    versions = tmp_path / "migrations" / "versions"
    (versions / "0001_demo.py").write_text(DEMO_MIGRATION)
    _alembic(tmp_path, "-n", "cleandb", "upgrade", "heads")
    # A later migration's table gets tracking from env_options(), inside run_sync().
    (versions / "0002_note.py").write_text(LATER_MIGRATION)
    _alembic(tmp_path, "-n", "cleandb", "upgrade", "heads")
    _check_resets(db_url, url)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_init_async_writes_the_async_environment(
    db_url: str, backend: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--async", "migrations"]) == 0
    env = (tmp_path / "migrations" / "env.py").read_text()
    assert env == (ROOT / "migrations_template" / "env_async.py").read_text()
    assert not (tmp_path / "migrations" / "env_async.py").exists()
    versions = tmp_path / "migrations" / "versions"
    (versions / "0001_demo.py").write_text(DEMO_MIGRATION)
    (versions / "0002_note.py").write_text(LATER_MIGRATION)
    url = _async_url(db_url, backend)
    monkeypatch.setenv("DATABASE_URL", url)
    _alembic(tmp_path, "-n", "cleandb", "upgrade", "heads")
    _check_resets(db_url, url)


@pytest.mark.parametrize("flags", [[], ["--async"]])
def test_init_lists_only_the_files_it_leaves(
    tmp_path: Path, monkeypatch, capsys, flags: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", *flags, "migrations"]) == 0
    said = capsys.readouterr().out
    assert "env.py ...  done" in said and "env_async.py" not in said


def test_init_without_async_keeps_the_sync_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init", "migrations"]) == 0
    assert not (tmp_path / "migrations" / "env_async.py").exists()
    assert "asyncio" not in (tmp_path / "migrations" / "env.py").read_text()


APP_TESTS = """
import asyncio, os
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

async def first_order():
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.begin() as c:
        await c.execute(sa.text("INSERT INTO orders (status_id) VALUES (2)"))
        value = (await c.execute(sa.text("SELECT MAX(id) FROM orders"))).scalar()
    await engine.dispose()
    return value

@pytest.mark.parametrize("i", range(3))
def test_app(i, cleandb_url):
    assert sa.make_url(cleandb_url).drivername == {driver!r}
    assert asyncio.run(first_order()) == 1
"""


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_cleandb_migrate_with_an_async_url_and_environment(
    pytester: pytest.Pytester, databases, backend: str
) -> None:
    url = _async_url(databases.create(), backend)
    main(
        [
            "init",
            "--async",
            str(pytester.path / "migrations"),
            "-c",
            str(pytester.path / "alembic.ini"),
        ]
    )
    (pytester.path / "migrations" / "versions" / "0001_demo.py").write_text(DEMO_MIGRATION)
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {url}\ncleandb_url_env = DATABASE_URL\n"
        "cleandb_migrate = alembic.ini:cleandb\n"
    )
    pytester.makepyfile(test_app=APP_TESTS.format(driver=ASYNC_DRIVER[backend]))
    pytester.runpytest().assert_outcomes(passed=3)
