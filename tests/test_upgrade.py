"""Upgrading tracking through Alembic: a database tracked by an older version of the library
is brought to the current schema version by `alembic -n cleandb upgrade heads`, and removing
tracking removes every object any version created (read from the catalog).

The older version's objects are frozen in tests/data/tracking_v3 (made by freeze.py there,
with the library's last schema-version-3 code): what that version's install created on the
schema of tests/migrations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

import alembic_cleandb
from alembic_cleandb import SCHEMA_VERSION, VersionMismatchError
from alembic_cleandb.backends import backend_for
from conftest import ROOT, alembic_config, upgrade
from dbutil import connect, dump, execute, insert, q

FROZEN = Path(__file__).resolve().parent / "data" / "tracking_v3"


def run_raw(connection: sa.Connection, sql: str) -> None:
    """A statement as the driver gets it, without parameters (no ``%`` parsing)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def install_v3(url: str, backend: str) -> None:
    """What schema version 3 left in a migrated database, and its `cleandb_0001` row."""
    frozen = json.loads((FROZEN / f"{backend}.json").read_text())
    assert frozen["schema_version"] == 3
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            for sql in frozen.get("statements", []) or frozen["ddl"]:
                run_raw(c, sql)
            for table, data in frozen.get("rows", {}).items():
                columns = ", ".join(q(c, col) for col in data["columns"])
                marks = ", ".join(f":p{i}" for i in range(len(data["columns"])))
                for row in data["rows"]:
                    c.execute(
                        sa.text(f"INSERT INTO {q(c, table)} ({columns}) VALUES ({marks})"),
                        {f"p{i}": v for i, v in enumerate(row)},
                    )
            if backend != "postgresql":
                database = backend_for(c.dialect.name).current_database(c)
                c.execute(sa.text("UPDATE cleandb_config SET database_name = :d"), {"d": database})
            c.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('cleandb_0001')"))
    finally:
        engine.dispose()


def plant_leftovers(url: str, backend: str) -> None:
    """Objects an even older version might have left: not in today's list of any kind."""
    if backend == "postgresql":
        execute(
            url,
            "CREATE FUNCTION cleandb.legacy_helper() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
            "CREATE FUNCTION public.cleandb_legacy() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
            "CREATE TABLE cleandb.legacy_marks (relid oid)",
        )
    elif backend == "mariadb":
        execute(
            url,
            "CREATE TABLE cleandb_legacy (id INT)",
            "CREATE PROCEDURE cleandb_legacy_reset() SELECT 1",
            "CREATE TRIGGER cleandb_legacy_t AFTER INSERT ON `user` FOR EACH ROW SET @x = 1",
        )
    else:
        execute(
            url,
            "CREATE TABLE cleandb_legacy (id INTEGER)",
            'CREATE TRIGGER cleandb_legacy_t AFTER INSERT ON "user" BEGIN SELECT 1; END',
        )


def own_objects(url: str) -> set[tuple[Any, ...]]:
    """Every object of the database that belongs to tracking, as the server lists them."""
    with connect(url) as c:

        def fetch(sql: str) -> set[tuple[Any, ...]]:
            return {tuple(r) for r in c.execute(sa.text(sql))}

        if c.dialect.name == "postgresql":
            return (
                fetch(
                    "SELECT 'relation', c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = 'cleandb'"
                )
                | fetch(
                    "SELECT 'function', n.nspname || '.' || p.proname FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = 'cleandb' OR p.proname LIKE 'cleandb%'"
                )
                | fetch(
                    "SELECT 'trigger', tgrelid::regclass::text || '.' || tgname FROM pg_trigger "
                    "WHERE tgname LIKE 'cleandb%'"
                )
                | fetch("SELECT 'event trigger', evtname FROM pg_event_trigger")
                | fetch("SELECT 'schema', nspname FROM pg_namespace WHERE nspname = 'cleandb'")
            )
        if c.dialect.name in ("mysql", "mariadb"):
            return (
                fetch(
                    "SELECT TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'cleandb%'"
                )
                | fetch(
                    "SELECT 'TRIGGER', TRIGGER_NAME FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME LIKE 'cleandb%'"
                )
                | fetch(
                    "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME LIKE 'cleandb%'"
                )
            )
        return fetch("SELECT type, name FROM sqlite_master WHERE name LIKE 'cleandb%'")


def installed_version(url: str) -> int | None:
    with connect(url) as c:
        return backend_for(c.dialect.name).installed_version(c)


def test_upgrade_heads_brings_an_older_version_to_the_current_one(databases, backend) -> None:
    fresh, old = databases.create(), databases.create()
    upgrade(fresh, cleandb=False)
    upgrade(fresh)  # today's install on the same tables: the objects an upgrade ends with
    upgrade(old, cleandb=False)
    install_v3(old, backend)
    plant_leftovers(old, backend)
    assert installed_version(old) == 3
    with pytest.raises(VersionMismatchError, match="upgrade heads"):
        alembic_cleandb.clean(old)
    baseline = dump(old)

    upgrade(old)  # alembic -n cleandb upgrade heads

    assert installed_version(old) == SCHEMA_VERSION
    assert own_objects(old) == own_objects(fresh)  # nothing of version 3 or older is left
    execute(
        old,
        "UPDATE lookup_status SET label = 'changed' WHERE code = 'new'",
        "DELETE FROM lookup_status WHERE code = 'paid'",
    )
    assert insert(old, "user", name="written") == 1
    assert alembic_cleandb.clean(old) == 2
    assert dump(old) == baseline
    assert insert(old, "user", name="again") == 1  # the counter is back at its baseline too


def test_uninstall_removes_what_every_version_created(databases, backend) -> None:
    url = databases.create()
    upgrade(url, cleandb=False)
    install_v3(url, backend)
    plant_leftovers(url, backend)
    assert own_objects(url)
    command.downgrade(alembic_config(url), "cleandb@base")
    assert own_objects(url) == set()


def test_upgrade_refuses_while_tables_are_marked_dirty(databases, backend) -> None:
    url = databases.create()
    upgrade(url, cleandb=False)
    install_v3(url, backend)
    insert(url, "user", name="not a baseline row")  # version 3's triggers mark the table
    before = own_objects(url)
    with pytest.raises(VersionMismatchError, match="marked dirty"):
        upgrade(url)
    assert installed_version(url) == 3
    assert own_objects(url) == before  # nothing changed


def test_the_branch_head_brings_this_librarys_schema_version() -> None:
    # A change of SCHEMA_VERSION needs a new revision in versions/ that upgrades to it.
    script = ScriptDirectory.from_config(alembic_cleandb.enable(alembic_config("sqlite://")))
    (head,) = script.get_revisions("cleandb@head")
    assert head is not None
    assert head.revision == alembic_cleandb.REVISION
    assert head.module.schema_version == SCHEMA_VERSION


STEP = '''"""A step that seeds one more row.

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("INSERT INTO lookup_status (id, code, label) VALUES (5, 'returned', 'Returned')")


def downgrade():
    op.execute("DELETE FROM lookup_status WHERE id = 5")
'''


def test_a_step_run_before_the_upgrade_revision_keeps_its_rows(databases, backend, tmp_path):
    """A new migration of the application that runs under the older tracking (Alembic may
    order it before the upgrade revisions): its rows are part of the baseline, nothing refuses."""
    url = databases.create()
    upgrade(url, cleandb=False)
    install_v3(url, backend)
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "0003_more_seed.py").write_text(STEP)
    config = alembic_config(url)
    config.set_main_option(
        "version_locations", f"{config.get_main_option('version_locations')} {versions}"
    )
    command.upgrade(config, "0003")  # the step alone, under version 3's triggers
    assert installed_version(url) == SCHEMA_VERSION
    command.upgrade(config, "heads")  # the upgrade revisions: nothing left to do
    baseline = dump(url)
    assert (5, "returned", "Returned") in baseline["lookup_status"]
    execute(url, "DELETE FROM lookup_status WHERE id = 5")
    assert alembic_cleandb.clean(url) == 1
    assert dump(url) == baseline


PLUGIN_TESTS = """
import sqlalchemy as sa

def test_writes(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    with engine.begin() as c:
        user = sa.Table("user", sa.MetaData(), autoload_with=c)
        assert c.execute(user.insert().values(name="x")).inserted_primary_key[0] == 1
    engine.dispose()

def test_writes_again(cleandb_url):
    test_writes(cleandb_url)
"""


@pytest.mark.slow
def test_cleandb_migrate_upgrades_tracking_of_an_older_version(
    pytester: pytest.Pytester, databases, backend
) -> None:
    url = databases.create()
    upgrade(url, cleandb=False)
    install_v3(url, backend)
    pytester.makeini(
        f"[pytest]\ncleandb_urls = {url}\ncleandb_migrate = {ROOT / 'alembic.ini'}:cleandb\n"
    )
    pytester.makepyfile(test_plugin_upgrade=PLUGIN_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"cleandb: *tracking schema v{SCHEMA_VERSION}, *cleandb_0005)"])
    assert installed_version(url) == SCHEMA_VERSION
