"""Wrong database: every entry point checks the database the connection is actually in (not
the name in the URL), and refuses with nothing changed. Identifiers cannot inject SQL."""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid

import pytest
import sqlalchemy as sa
from alembic import command

import alembic_cleandb
from alembic_cleandb import UnsafeDatabaseError
from alembic_cleandb.backends import backend_for
from conftest import Databases, alembic_config, server_engine, upgrade
from reliability_helpers import ENTRY_POINTS, connection, engine, entry_points, full_dump, marks, q

pytestmark = pytest.mark.slow  # exhaustive, every entry point on every server

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)


def _elsewhere(url: str, other: str) -> str:
    """A URL that names the test database but lands in ``other``."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.update_query_dict({"dbname": other})  # libpq: the last dbname wins
    else:
        parsed = parsed.update_query_dict({"init_command": f"USE `{other}`"})
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def production(databases: Databases, migrated: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database whose name lacks "test", holding tracking and dirty rows: a restored dump of
    a test database, or one tracked by mistake."""
    name = f"prod_app_{uuid.uuid4().hex[:6]}"  # (unique: xdist workers share the server)
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", name)
    url = databases.create(name)
    upgrade(url)
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE")
    with connection(url) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('precious')"))
        c.commit()
    return url


@SERVERS
@entry_points
def test_a_url_naming_a_test_database_that_lands_elsewhere_is_refused(
    call: str, production: str, migrated: str
) -> None:
    before = full_dump(production)
    name = sa.make_url(production).database
    sneaky = _elsewhere(migrated, str(name))
    with pytest.raises(UnsafeDatabaseError, match=f"'{name}'.*Nothing was changed"):
        ENTRY_POINTS[call](sneaky)
    assert full_dump(production) == before


@pytest.mark.parametrize(
    ("backend", "how"),
    [("postgresql", "opened"), ("mariadb", "opened"), ("mariadb", "moved")],
    indirect=["backend"],
)
@pytest.mark.parametrize("call", [n for n in ENTRY_POINTS if n != "Cleaner"])  # (URLs only)
def test_a_connection_in_another_database_than_its_url_names_is_refused(
    call: str, how: str, production: str, migrated: str
) -> None:
    """A Connection whose engine URL names the test database while it is in another one:
    opened there (libpq's last ``dbname`` wins, a MySQL ``init_command`` runs ``USE``), or
    moved there later by ``USE`` (MySQL family; a PostgreSQL session cannot change database)."""
    before = full_dump(production)
    name = sa.make_url(production).database
    url = migrated if how == "moved" else _elsewhere(migrated, str(name))
    e = engine(url, isolation_level="AUTOCOMMIT")
    with e.connect() as c:
        if how == "moved":
            c.exec_driver_sql(f"USE `{name}`")
        assert c.engine.url.database == sa.make_url(migrated).database
        with pytest.raises(UnsafeDatabaseError, match=f"'{name}'.*Nothing was changed"):
            ENTRY_POINTS[call](c)
    e.dispose()
    assert full_dump(production) == before


@SERVERS
def test_the_migration_hook_refuses_to_sync_in_a_non_test_database(
    production: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restored test dump in production: the next migration stops at its first step instead
    of re-syncing test tracking there (on PostgreSQL the step is rolled back with it)."""
    name = sa.make_url(production).database
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", str(name))
    command.downgrade(alembic_config(production), "0002-1")
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE")
    before = full_dump(production)
    with pytest.raises(UnsafeDatabaseError, match=f"refuses to sync tracking in database '{name}'"):
        command.upgrade(alembic_config(production), "heads")
    if sa.make_url(production).get_backend_name() == "postgresql":
        assert full_dump(production) == before


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_copy_of_a_test_database_refuses_until_adopted(
    databases: Databases, migrated: str
) -> None:
    """Even when its name contains "test": tracking knows the database it was installed in."""
    with connection(migrated) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
        c.commit()
    name = sa.make_url(migrated).database
    copy_name = f"copy_of_test_{uuid.uuid4().hex[:6]}"
    copy = databases.create(copy_name)
    with server_engine("postgresql").connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {q(c, copy_name)}")
        c.exec_driver_sql(f"CREATE DATABASE {q(c, copy_name)} TEMPLATE {q(c, str(name))}")
    engine_copy = engine(copy, isolation_level="AUTOCOMMIT")
    with engine_copy.connect() as c:
        for sql in ("SELECT cleandb_truncate()", "SELECT cleandb_set_baseline()"):
            with pytest.raises(sa.exc.DBAPIError, match="was installed in database"):
                c.exec_driver_sql(sql)
    engine_copy.dispose()
    with pytest.raises(UnsafeDatabaseError, match="installed in database.*adopt"):
        command.downgrade(alembic_config(copy), "0002-1")  # the hook after the step
    with pytest.raises(alembic_cleandb.ResetError, match="was installed in database"):
        alembic_cleandb.clean(copy)
    assert marks(copy) == {"user"}
    alembic_cleandb.adopt(copy)
    assert alembic_cleandb.clean(copy) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_offline_install_script_run_by_psql_in_a_non_test_database_creates_nothing(
    databases: Databases,
) -> None:
    """psql without ON_ERROR_STOP carries on after an error: the script's own transaction
    still keeps the guard's refusal from leaving anything behind."""
    url = databases.create(f"prod_offline_{uuid.uuid4().hex[:6]}")
    upgrade(url, "heads", cleandb=False)
    config = alembic_config(url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "0002:cleandb@head", sql=True)
    script = config.output_buffer.getvalue()
    assert script.lstrip().startswith("BEGIN;") or "BEGIN;" in script
    psql = shutil.which("psql")
    assert psql, "psql is part of the PostgreSQL client the CI installs"
    parsed = sa.make_url(url)
    result = subprocess.run(
        [psql, "-h", str(parsed.host), "-p", str(parsed.port or 5432), "-U", str(parsed.username),
         "-d", str(parsed.database), "-v", "ON_ERROR_STOP=0"],
        input=script, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert f"refuses to install tracking in database '{sa.make_url(url).database}'" in result.stderr
    with engine(url).connect() as c:
        assert c.exec_driver_sql("SELECT to_regnamespace('cleandb')").scalar() is None
        assert c.exec_driver_sql("SELECT to_regproc('cleandb_truncate')").scalar() is None


# -- identifiers ---------------------------------------------------------------------------------

NASTY_TABLES = [
    'x"; DROP TABLE canary; --',
    "y`; DROP TABLE canary; --",
    "it's -- a ; table",
    "100% $cleandb$ %s %I",
]
NASTY_COLUMN = "c\"`'; DROP TABLE canary; -- %s"


def test_identifiers_with_quotes_backticks_semicolons_and_comments(migrated: str) -> None:
    e = engine(migrated)
    metadata = sa.MetaData()
    tables = [
        sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column(NASTY_COLUMN, sa.String(40)),
        )
        for name in NASTY_TABLES
    ]
    canary = sa.Table("canary", metadata, sa.Column("v", sa.Integer))
    metadata.create_all(e)
    with e.begin() as c:
        c.execute(canary.insert().values(v=1))
        for t in tables:
            c.execute(t.insert().values({NASTY_COLUMN: "seed"}))
    alembic_cleandb.set_baseline(migrated)  # the seed rows are the baseline now
    baseline = full_dump(migrated)
    with engine(migrated, isolation_level="AUTOCOMMIT").connect() as c:
        tracked = backend_for(c.dialect.name).tracked_tables(c)
    assert set(NASTY_TABLES) <= set(tracked)
    with e.begin() as c:
        for t in tables:
            c.execute(t.insert().values({NASTY_COLUMN: "new"}))
            c.execute(t.update().where(t.c.id == 1).values({NASTY_COLUMN: "changed"}))
        c.execute(tables[0].delete())
    assert set(NASTY_TABLES) <= marks(migrated)
    assert alembic_cleandb.clean(migrated) == len(NASTY_TABLES)
    assert full_dump(migrated) == baseline
    with e.connect() as c:
        assert c.execute(sa.select(canary.c.v)).scalars().all() == [1]
        nasty = [c.execute(sa.select(t.c[NASTY_COLUMN])).scalars().all() for t in tables]
        assert nasty == [["seed"]] * len(tables)
    e.dispose()
