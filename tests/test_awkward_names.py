"""Names with ``%``, ``'``, ``"``, backticks, ``;`` and spaces, through every path that names
a table: install, reset, sync, the report's probe, lock diagnostics, pytest-xdist worker
copies and ``--cleandb-report`` - on each backend.

Before one renderer did all the quoting, ``%`` was doubled by SQLAlchemy's quoting and then
run where no driver undoubles it: worker copies on MariaDB failed with ``Table
'..._gw0.50%%_off' doesn't exist`` (an INTERNALERROR) and the report with ``relation
"side.50%%_off" does not exist``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

import alembic_cleandb
from alembic_cleandb import ResetError
from alembic_cleandb.testing.report import Probe
from conftest import Databases, upgrade

NAMES = ["50%_off", "it's", 'say "hi"', "back`tick", "semi;colon", "with space", "%(p0)s ?"]


@contextmanager
def _engine(url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _table(name: str, schema: str | None = None) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(schema=schema),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(f"{name} col", sa.String(50)),
    )


def _create(url: str, table: sa.Table, *rows: str) -> None:
    with _engine(url) as engine, engine.begin() as c:
        if table.schema is not None:
            c.execute(sa.schema.CreateSchema(table.schema))
        table.create(c)
        for value in rows:
            c.execute(table.insert().values({f"{table.name} col": value}))


def _insert(url: str, table: sa.Table, value: str) -> int:
    with _engine(url) as engine, engine.begin() as c:
        key = c.execute(table.insert().values({f"{table.name} col": value})).inserted_primary_key
        return int(key[0])


def _rows(url: str, table: sa.Table) -> list[tuple[object, ...]]:
    with _engine(url) as engine, engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(table).order_by(table.c.id))]


@pytest.mark.parametrize("name", NAMES)
def test_install_reset_sync_report_with_an_awkward_name(
    backend: str, db_url: str, name: str
) -> None:
    _exercise(backend, db_url, name)


# Every DB-API paramstyle the drivers use: pyformat (psycopg, psycopg2, PyMySQL), format
# (pg8000, mysqlclient), qmark (sqlite3).
@pytest.mark.parametrize(
    ("backend", "driver"),
    [
        ("postgresql", "postgresql+psycopg2"),
        ("postgresql", "postgresql+pg8000"),
        ("mariadb", "mariadb+mysqldb"),
        ("sqlite", "sqlite+pysqlite"),
    ],
    indirect=["backend"],
)
def test_awkward_names_through_each_driver(backend: str, db_url: str, driver: str) -> None:
    url = sa.make_url(db_url).set(drivername=driver)
    _exercise(backend, url.render_as_string(hide_password=False), '50%_off it\'s; `x` "y"')


def _exercise(backend: str, db_url: str, name: str) -> None:
    seeded = _table(name)
    _create(db_url, seeded, "seed")
    upgrade(db_url, "cleandb@head")  # install: the table is attached and its row is baseline

    # reset: a write, an update of the baseline row; the counter goes back too
    _insert(db_url, seeded, "a test's row")
    with _engine(db_url) as engine, engine.begin() as c:
        c.execute(seeded.update().values({f"{name} col": "changed"}))
    probe = Probe(db_url, 5.0)
    try:
        assert probe.dirty() == [name]
        assert alembic_cleandb.clean(db_url) == 1
        assert _rows(db_url, seeded) == [(1, "seed")]
        assert _insert(db_url, seeded, "next") == 2
        assert alembic_cleandb.clean(db_url) == 1

        # sync: a table created outside migrations is attached, under the awkward name
        later = _table(f"{name} 2")
        _create(db_url, later)
        alembic_cleandb.sync(db_url)
        _insert(db_url, later, "x")
        assert alembic_cleandb.clean(db_url) == 1
        assert _rows(db_url, later) == []

        # report: a table no reset undoes (PostgreSQL tracks its current schema only, so
        # there it lives in another schema - with an awkward name too)
        schema = f"side {name}" if backend == "postgresql" else None
        untracked = _table(f"{name} 3", schema)
        _create(db_url, untracked)
        display = untracked.name if schema is None else f"{schema}.{untracked.name}"
        probe.untracked_writes()  # (the new table, with no rows yet)
        _insert(db_url, untracked, "kept")
        assert probe.untracked_writes() == [(display, 0, 1)]
    finally:
        probe.close()


@contextmanager
def _holding_a_lock(url: str, table: sa.Table) -> Iterator[None]:
    """Another session with an uncommitted write to ``table`` (SQLite: to the database)."""
    with _engine(url) as engine, engine.connect() as c:
        c.execute(table.update().values({f"{table.name} col": "locked"}))
        yield
        c.rollback()


def test_lock_diagnostics_name_an_awkward_table(backend: str, db_url: str) -> None:
    name = "50%_off it's"
    table = _table(name)
    _create(db_url, table, "seed")
    upgrade(db_url, "cleandb@head")
    _insert(db_url, table, "dirty")
    with _holding_a_lock(db_url, table), pytest.raises(ResetError) as info:
        alembic_cleandb.clean(db_url, lock_timeout=1)
    message = str(info.value).lower()
    assert "another session holds a lock" in message  # classified as a lock timeout
    if backend == "postgresql":
        assert 'the reset was waiting for a lock on table "50%_off it\'s"' in message
        assert message.count(f'"{name}"') >= 2  # the waited-for table, the holding session
    elif backend == "mariadb":
        assert "the reset was waiting for a lock on table `50%_off it's`" in message
    assert alembic_cleandb.clean(db_url) == 1  # the marks were kept
    assert _rows(db_url, table) == [(1, "seed")]


XDIST_TESTS = """
import os
import sqlalchemy as sa

NAME = {name!r}

def _count(url):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            t = sa.Table(NAME, sa.MetaData(), autoload_with=c)
            return c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    finally:
        engine.dispose()

def test_each_worker_has_the_table_and_its_row(cleandb_url):
    assert cleandb_url.endswith(("_" + os.environ["PYTEST_XDIST_WORKER"], ".db"))
    assert _count(cleandb_url) == 1
"""


def test_worker_copies_with_percent_names(
    pytester: pytest.Pytester, backend: str, databases: Databases
) -> None:
    """The database's own name has ``%`` and a space too (copies are ``<name>_gw0``)."""
    url = databases.create(f"cleandb-test-50% {uuid.uuid4().hex[:6]}")
    name = "50%_off"
    _create(url, _table(name), "seed")
    upgrade(url, "cleandb@head")
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n")
    pytester.makepyfile(test_awkward=XDIST_TESTS.format(name=name))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each", "-p", "no:randomly")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)


REPORT_TESTS = """
import sqlalchemy as sa

def test_writes_an_untracked_table(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    try:
        with engine.begin() as c:
            t = sa.Table({name!r}, sa.MetaData(schema={schema!r}), autoload_with=c)
            c.execute(t.insert().values(x=1))
    finally:
        engine.dispose()
"""


def test_report_with_percent_names(pytester: pytest.Pytester, backend: str, migrated: str) -> None:
    schema = "side" if backend == "postgresql" else None
    name = "50%_off"
    with _engine(migrated) as engine, engine.begin() as c:
        if schema:
            c.execute(sa.schema.CreateSchema(schema))
        sa.Table(name, sa.MetaData(schema=schema), sa.Column("x", sa.Integer)).create(c)
    pytester.makeini(f"[pytest]\ncleandb_urls = {migrated}\n")
    pytester.makepyfile(test_report=REPORT_TESTS.format(name=name, schema=schema))
    result = pytester.runpytest_subprocess("--cleandb-report", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    display = name if schema is None else f"{schema}.{name}"
    result.stdout.fnmatch_lines(
        [
            "WRITTEN BUT NOT TRACKED*",
            f"  {display}: 0 rows -> 1 rows; first by test_report.py::*",
        ]
    )


def test_offline_sql_with_awkward_names_runs_on_postgresql(tmp_path) -> None:
    """``alembic upgrade --sql`` output (PostgreSQL) quotes excluded names and the allowed
    database as literals; the script runs as it is, and tracking honours both."""
    import io

    import psycopg
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    import alembic_cleandb.operations  # noqa: F401  (registers the operation)

    databases = Databases("postgresql", tmp_path)
    try:
        url = databases.create(f"cleandb-test-50% it's {uuid.uuid4().hex[:6]}")
        kept, excluded = _table("50%_off it's"), _table('skip; `me` "now"')
        _create(url, kept, "seed")
        _create(url, excluded)
        buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer}
        )
        Operations(context).install_clean_tracking(exclude=[excluded.name])  # type: ignore[attr-defined]
        script = buffer.getvalue()
        assert "'skip; `me` \"now\"'" in script
        parsed = sa.make_url(url)
        with psycopg.connect(
            host=parsed.host,
            port=parsed.port,
            user=parsed.username,
            dbname=parsed.database,
            autocommit=True,
        ) as c:
            c.execute(script)  # type: ignore[call-overload]
        _insert(url, kept, "x")
        _insert(url, excluded, "y")
        assert alembic_cleandb.clean(url) == 1
        assert _rows(url, kept) == [(1, "seed")]
        assert _rows(url, excluded) == [(1, "y")]  # excluded: left alone
    finally:
        databases.drop_all()
