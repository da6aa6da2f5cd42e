"""Every driver a URL may name resets: psycopg2, psycopg, asyncpg, psycopg_async, pg8000;
PyMySQL, mysqlclient, asyncmy, aiomysql; sqlite3, aiosqlite - as a URL, an Engine, a
Connection, an AsyncEngine, an AsyncConnection and the Connection of ``run_sync()``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import alembic_cleandb
from alembic_cleandb import ConfigurationError
from dbutil import count, insert, rows

pytestmark = pytest.mark.slow  # runs Python and pytest -n 2 in other processes
# (in subprocesses: an async driver's inner session in this process crashed an xdist worker)

DRIVERS = [
    ("postgresql", "postgresql+psycopg2"),
    ("postgresql", "postgresql+psycopg"),
    ("postgresql", "postgresql+pg8000"),
    ("postgresql", "postgresql+asyncpg"),
    ("postgresql", "postgresql+psycopg_async"),
    ("mariadb", "mysql+pymysql"),
    ("mariadb", "mysql+mysqldb"),
    ("mariadb", "mysql+asyncmy"),
    ("mariadb", "mysql+aiomysql"),
    ("mariadb", "mariadb+asyncmy"),
    ("sqlite", "sqlite+pysqlite"),
    ("sqlite", "sqlite+aiosqlite"),
]
ASYNC = {"asyncpg", "psycopg_async", "asyncmy", "aiomysql", "aiosqlite"}
by_driver = pytest.mark.parametrize(
    ("backend", "driver"), DRIVERS, indirect=["backend"], ids=[d for _, d in DRIVERS]
)


def _as(url: str, driver: str) -> str:
    return sa.make_url(url).set(drivername=driver).render_as_string(hide_password=False)


def _is_async(driver: str) -> bool:
    return driver.partition("+")[2] in ASYNC


def _app_insert(url: str, name: str) -> int:
    """Insert a user the way an application on this driver does; the new id."""
    statement = sa.text('INSERT INTO "user" (name) VALUES (:n)')
    select = sa.text('SELECT MAX(id) FROM "user"')
    if sa.make_url(url).get_backend_name() in ("mysql", "mariadb"):
        statement = sa.text("INSERT INTO `user` (name) VALUES (:n)")
        select = sa.text("SELECT MAX(id) FROM `user`")
    if not _is_async(sa.make_url(url).drivername):
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as c:
                c.execute(statement, {"n": name})
                return int(c.execute(select).scalar_one())
        finally:
            engine.dispose()

    async def run() -> int:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        try:
            async with engine.begin() as c:
                await c.execute(statement, {"n": name})
                return int((await c.execute(select)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(run())


@by_driver
def test_every_url_form_resets(migrated: str, driver: str) -> None:
    url = _as(migrated, driver)
    assert _app_insert(url, "a") == 1
    assert alembic_cleandb.clean(url) == 1
    assert count(migrated, "user") == 0
    with alembic_cleandb.Cleaner(url) as cleaner:
        assert _app_insert(url, "b") == 1
        assert cleaner.reset() == 1
        assert _app_insert(url, "c") == 1
        assert cleaner.reset() == 1
    insert(migrated, "user", name="seed")
    alembic_cleandb.set_baseline(url)
    alembic_cleandb.sync(url)
    assert _app_insert(url, "d") == 2
    assert alembic_cleandb.clean(url) == 1
    assert rows(migrated, "user") == [(1, "seed")]


@by_driver
def test_engine_and_connection_of_every_driver(migrated: str, driver: str) -> None:
    url = _as(migrated, driver)
    if not _is_async(driver):
        engine = sa.create_engine(url)
        try:
            _app_insert(url, "a")
            assert alembic_cleandb.clean(engine) == 1
            _app_insert(url, "b")
            with engine.connect() as connection:
                assert alembic_cleandb.clean(connection) == 1
                connection.commit()  # the reset ran in this connection's transaction
        finally:
            engine.dispose()
        assert count(migrated, "user") == 0
        return

    async def run() -> list[int]:
        engine = create_async_engine(url)
        counts = []
        try:
            async with engine.begin() as c:
                await c.execute(sa.text("INSERT INTO probe_t (x) VALUES (1)"))
            counts.append(alembic_cleandb.clean(engine))
            async with engine.connect() as c:
                await c.execute(sa.text("INSERT INTO probe_t (x) VALUES (1)"))
                await c.commit()
                counts.append(alembic_cleandb.clean(c))
                await c.execute(sa.text("INSERT INTO probe_t (x) VALUES (1)"))
                await c.commit()
                counts.append(await c.run_sync(alembic_cleandb.clean))
        finally:
            await engine.dispose()
        return counts

    # A table the reset must empty, created outside migrations and tracked by sync().
    with sa.create_engine(migrated).begin() as c:
        c.exec_driver_sql("CREATE TABLE probe_t (x INTEGER)")
    alembic_cleandb.sync(migrated)
    assert asyncio.run(run()) == [1, 1, 1]
    assert count(migrated, "probe_t") == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_in_memory_sqlite_through_an_async_engine_says_what_to_pass(backend: str) -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    with pytest.raises(ConfigurationError, match="in-memory SQLite.*sqlite3 driver"):
        alembic_cleandb.clean(engine)
    asyncio.run(engine.dispose())


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1/x_test", "psycopg", "postgresql"),
        ("mysql+aiomysql://root@127.0.0.1/x_test", "pymysql", "mysql"),
    ],
)
def test_missing_sync_driver_names_the_extra(url: str, module: str, extra: str) -> None:
    # A fresh interpreter where the family's sync driver cannot be imported.
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules[{module!r}] = None
        import alembic_cleandb
        try:
            alembic_cleandb.clean({url!r})
        except alembic_cleandb.ConfigurationError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert f"pip install 'alembic-cleandb[{extra}]'" in out, out
    assert "sync driver" in out, out


def _settings_for(pytester: pytest.Pytester, url: str, **ini: Any) -> None:
    lines = [f"cleandb_urls = {url}", "cleandb_url_env = DATABASE_URL"]
    lines += [f"{k} = {v}" for k, v in ini.items()]
    pytester.makeini("[pytest]\n" + "\n".join(lines) + "\n")


APP_TESTS = """
import asyncio, os
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

ASYNC = {async_}

def add_user(url):
    q = '`' if url.startswith(("mysql", "mariadb")) else '"'
    statement = sa.text(f"INSERT INTO {{q}}user{{q}} (name) VALUES ('x')")
    select = sa.text(f"SELECT MAX(id) FROM {{q}}user{{q}}")
    if not ASYNC:
        engine = sa.create_engine(url)
        with engine.begin() as c:
            c.execute(statement)
            value = c.execute(select).scalar()
        engine.dispose()
        return value
    async def run():
        engine = create_async_engine(url)
        async with engine.begin() as c:
            await c.execute(statement)
            value = (await c.execute(select)).scalar()
        await engine.dispose()
        return value
    return asyncio.run(run())

@pytest.mark.parametrize("i", range(4))
def test_app(i, cleandb_url, cleandb_urls):
    assert os.environ["DATABASE_URL"] == cleandb_url == cleandb_urls[0]
    assert sa.make_url(cleandb_url).drivername == {driver!r}
    assert add_user(os.environ["DATABASE_URL"]) == 1
"""


@by_driver
def test_plugin_keeps_the_url_as_written(
    pytester: pytest.Pytester, migrated: str, driver: str
) -> None:
    url = _as(migrated, driver)
    _settings_for(pytester, url)
    pytester.makepyfile(test_app=APP_TESTS.format(async_=_is_async(driver), driver=driver))
    pytester.runpytest_subprocess().assert_outcomes(passed=4)
    if _is_async(driver):  # each worker gets its copy's URL, async driver kept
        pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=4)
