"""Bad input: each mistake gets one clear message that says how to fix it, never shows a
password, and loses nothing."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from alembic import command

import alembic_cleandb
from alembic_cleandb import (
    ConfigurationError,
    NotInstalledError,
    ResetError,
    VersionMismatchError,
)
from conftest import alembic_config, upgrade
from reliability_helpers import ENTRY_POINTS, connection, engine, entry_points, full_dump, marks, q

pytestmark = pytest.mark.slow  # exhaustive, every entry point with every mistake

SECRET = "s3cret-pw"


def _with_password(url: str) -> str:
    return sa.make_url(url).set(password=SECRET).render_as_string(hide_password=False)


@entry_points
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a database URL.*Use a form like"),
        ("", "is not a database URL"),
        ("postgresql://u:" + SECRET + "@localhost:notaport/x_test", "is not a database URL"),
        ("nosuchdb://u:" + SECRET + "@localhost/x_test", "unknown database kind.*supported"),
    ],
)
def test_malformed_or_unknown_urls(call: str, url: str, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as info:
        ENTRY_POINTS[call](url)
    assert SECRET not in str(info.value)


@entry_points
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_wrong_credentials(call: str, backend: str, db_url: str) -> None:
    url = sa.make_url(_with_password(db_url))
    url = url.set(username="nobody_here") if backend == "postgresql" else url  # trust auth
    with pytest.raises(ConfigurationError, match="cannot connect to .*credentials") as info:
        ENTRY_POINTS[call](url.render_as_string(hide_password=False))
    message = str(info.value)
    assert SECRET not in message and "***" in message
    assert ("nobody_here" in message) if backend == "postgresql" else ("Access denied" in message)


@entry_points
def test_missing_database(call: str, backend: str, db_url: str) -> None:
    missing = sa.make_url(db_url)
    if backend == "sqlite":
        missing = missing.set(database=str(missing.database).replace(".db", "-missing.db"))
    else:
        missing = missing.set(database="cleandb_missing_test")
        if backend == "postgresql":  # (trust authentication: the password is not checked)
            missing = missing.set(password=SECRET)
    with pytest.raises(ConfigurationError) as info:
        ENTRY_POINTS[call](missing.render_as_string(hide_password=False))
    message = str(info.value)
    assert "does not exist" in message or "Unknown database" in message
    assert "migrations" in message
    assert SECRET not in message
    if backend == "sqlite":
        assert not os.path.exists(str(missing.database))  # no stray empty file


@entry_points
def test_tracking_not_installed(call: str, db_url: str) -> None:
    upgrade(db_url, cleandb=False)  # the production config: no cleandb branch
    before = full_dump(db_url)
    url = _with_password(db_url) if db_url.startswith("postgresql") else db_url  # (trust)
    with pytest.raises(NotInstalledError, match="tracking is not installed in") as info:
        ENTRY_POINTS[call](url)
    message = str(info.value)
    assert "alembic -n cleandb upgrade cleandb@head" in message
    assert SECRET not in message
    assert full_dump(db_url) == before
    with engine(db_url).connect() as c:
        assert not [t for t in sa.inspect(c).get_table_names() if t.startswith("cleandb")]


def _set_version(url: str, version: int) -> None:
    with connection(url) as c:
        table = "cleandb.config" if c.dialect.name == "postgresql" else "cleandb_config"
        c.execute(sa.text(f"UPDATE {table} SET schema_version = :v"), {"v": version})
        c.commit()


@entry_points
def test_tracking_of_another_schema_version(call: str, migrated: str) -> None:
    with connection(migrated) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('dirty')"))
        c.commit()
    _set_version(migrated, alembic_cleandb.SCHEMA_VERSION - 1)
    with pytest.raises(VersionMismatchError) as info:
        ENTRY_POINTS[call](migrated)
    message = str(info.value)
    assert f"schema version {alembic_cleandb.SCHEMA_VERSION - 1}" in message
    assert "alembic -n cleandb upgrade heads" in message
    assert marks(migrated) == {"user"}  # nothing was touched
    # That the fix the message gives works, from real objects of an older version: test_upgrade.py


def test_a_migration_step_upgrades_tracking_of_an_older_schema_version(migrated: str) -> None:
    """The env hook re-syncs tracking after each migration step: with objects of an older
    version (a step ordered before the branch's upgrade revision) it re-installs them first,
    never mixing versions; the step's rows are the baseline."""
    command.downgrade(alembic_config(migrated), "0002-1")  # one step of the app's migrations
    _set_version(migrated, alembic_cleandb.SCHEMA_VERSION - 1)
    command.upgrade(alembic_config(migrated), "heads")
    baseline = full_dump(migrated)
    with connection(migrated) as c:
        c.execute(sa.text("DELETE FROM lookup_status WHERE id = 4"))  # the step's seed row
        c.commit()
    assert alembic_cleandb.clean(migrated) == 1
    assert full_dump(migrated) == baseline


def test_a_migration_step_refuses_tracking_of_a_newer_schema_version(migrated: str) -> None:
    command.downgrade(alembic_config(migrated), "0002-1")
    _set_version(migrated, alembic_cleandb.SCHEMA_VERSION + 1)
    with connection(migrated) as c:
        versions = set(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    with pytest.raises(VersionMismatchError, match="newer than this library"):
        command.upgrade(alembic_config(migrated), "heads")
    with connection(migrated) as c:  # the step did not go through
        after = set(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    assert after == versions


def _dirty(url: str) -> None:
    with connection(url) as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
        c.execute(sa.text("INSERT INTO audit_entry (what) VALUES ('x')"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed'"))
        c.commit()


def test_a_table_dropped_behind_the_trackers_back(backend: str, migrated: str) -> None:
    baseline = full_dump(migrated)
    _dirty(migrated)
    with connection(migrated) as c:
        c.execute(sa.text("DROP TABLE audit_entry"))
        c.commit()
    del baseline[".audit_entry"]
    if backend == "postgresql":  # tracking follows the table's oid: nothing to say
        assert alembic_cleandb.clean(migrated) == 2
    else:
        with pytest.raises(ResetError) as info:
            alembic_cleandb.clean(migrated)
        message = str(info.value)
        assert "audit_entry" in message
        assert "dropped or renamed outside migrations" in message
        assert "alembic_cleandb.sync(url)" in message
        if backend == "mariadb":  # every other table was reset; the gone one keeps its mark
            assert marks(migrated) == {"audit_entry"}
        else:  # SQLite: one transaction, nothing changed
            assert marks(migrated) == {"user", "audit_entry", "lookup_status"}
        alembic_cleandb.sync(migrated)  # the fix the message gives
        alembic_cleandb.clean(migrated)
    dump = full_dump(migrated)
    dump["<counters>"].pop("audit_entry", None)
    dump["<counters>"].pop("public.audit_entry_id_seq", None)
    baseline["<counters>"].pop("audit_entry", None)
    baseline["<counters>"].pop("public.audit_entry_id_seq", None)
    assert dump == baseline


def test_a_table_renamed_behind_the_trackers_back(backend: str, migrated: str) -> None:
    baseline = full_dump(migrated)
    _dirty(migrated)
    rename = "ALTER TABLE audit_entry RENAME TO audit_renamed"
    with connection(migrated) as c:
        c.execute(sa.text(rename))
        c.commit()
    if backend == "postgresql":  # reset fragments name the table by oid: it just works
        assert alembic_cleandb.clean(migrated) == 3
        with connection(migrated) as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM audit_renamed")).scalar() == 0
            c.execute(sa.text("ALTER TABLE audit_renamed RENAME TO audit_entry"))
            c.commit()
    else:
        with pytest.raises(ResetError) as info:
            alembic_cleandb.clean(migrated)
        message = str(info.value)
        assert "audit_entry" in message and "dropped or renamed" in message
        assert "rename it back" in message
        with connection(migrated) as c:  # the first fix the message gives
            c.execute(sa.text("ALTER TABLE audit_renamed RENAME TO audit_entry"))
            c.commit()
        alembic_cleandb.clean(migrated)
    assert full_dump(migrated) == baseline


def test_the_plugin_turns_bad_urls_into_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleandb_urls = not a url\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is not a database URL*"])


def test_the_plugin_stops_on_an_unreachable_database(pytester: pytest.Pytester) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:1/nothing_test"
    pytester.makeini(f"[pytest]\ncleandb_urls = {url}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "cannot connect to" in output and SECRET not in output
