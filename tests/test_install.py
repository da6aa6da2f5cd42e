"""Install, uninstall and the Alembic side: branch visibility, autogenerate, offline SQL."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from conftest import alembic_config, upgrade
from dbutil import connect, dump, insert


def catalog(url: str) -> dict[str, Any]:
    """Every schema object of the database, as the server lists them."""
    with connect(url) as c:
        name = c.dialect.name

        def fetch(sql: str) -> list[tuple[Any, ...]]:
            return sorted(tuple(r) for r in c.execute(sa.text(sql)))

        if name == "postgresql":
            return {
                "relations": fetch(
                    "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname NOT IN "
                    "('pg_catalog', 'information_schema', 'pg_toast')"
                ),
                "functions": fetch(
                    "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n "
                    "ON n.oid = p.pronamespace WHERE n.nspname NOT IN "
                    "('pg_catalog', 'information_schema')"
                ),
                "triggers": fetch(
                    "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
                ),
                "event_triggers": fetch("SELECT evtname FROM pg_event_trigger"),
                "schemas": fetch("SELECT nspname FROM pg_namespace"),
            }
        if name in ("mysql", "mariadb"):
            return {
                "tables": fetch(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE()"
                ),
                "triggers": fetch(
                    "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
                    "WHERE TRIGGER_SCHEMA = DATABASE()"
                ),
                "routines": fetch(
                    "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = DATABASE()"
                ),
            }
        return {"objects": fetch("SELECT type, name, tbl_name, sql FROM sqlite_master")}


def test_install_then_uninstall_leaves_the_schema_exactly_as_before(db_url: str) -> None:
    upgrade(db_url, "heads", cleandb=False)
    insert(db_url, "user", name="kept")
    before, data = catalog(db_url), dump(db_url)
    upgrade(db_url, "cleandb@head")
    assert catalog(db_url) != before
    insert(db_url, "Order", user_id=1, total=2)  # tracked write, then uninstall
    command.downgrade(alembic_config(db_url), "cleandb@base")
    assert catalog(db_url) == before
    after = dump(db_url)
    assert after["user"] == data["user"]
    assert len(after["Order"]) == 1  # uninstall removes tracking, never data


def test_op_drop_clean_tracking_twice_is_harmless(migrated: str) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with connect(migrated) as c:
        ops = Operations(MigrationContext.configure(c))
        ops.drop_clean_tracking()
        ops.drop_clean_tracking()
    with pytest.raises(alembic_cleandb.NotInstalledError):
        alembic_cleandb.clean(migrated)


def test_production_config_has_one_head_and_never_sees_the_branch(db_url: str) -> None:
    prod = alembic_config(db_url, cleandb=False)
    script = ScriptDirectory.from_config(prod)
    assert script.get_heads() == ["0002"]
    test = ScriptDirectory.from_config(alembic_config(db_url))
    assert sorted(test.get_heads()) == ["0002", alembic_cleandb.REVISION]
    command.upgrade(prod, "head")  # no "Multiple head revisions"
    with connect(db_url) as c:
        assert not [t for t in sa.inspect(c).get_table_names() if t.startswith("cleandb")]


def test_check_and_autogenerate_ignore_cleandb_objects(db_url: str, tmp_path) -> None:
    upgrade(db_url, "heads", cleandb=False)
    metadata = sa.MetaData()
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        metadata.reflect(c)
    engine.dispose()
    prod = alembic_config(db_url, cleandb=False)
    prod.attributes["target_metadata"] = metadata
    command.check(prod)  # the production database: clean
    upgrade(db_url, "cleandb@head")
    test = alembic_config(db_url)
    test.attributes["target_metadata"] = metadata
    command.check(test)  # tracking installed: still nothing to report
    assert alembic_cleandb.clean(db_url) == 0


def test_database_with_the_cleandb_revision_and_production_config_explains_the_fix(
    migrated: str,
) -> None:
    with pytest.raises(CommandError) as excinfo:
        command.upgrade(alembic_config(migrated, cleandb=False), "head")
    message = str(excinfo.value)
    assert "Can't locate revision" in message
    assert "alembic -n cleandb" in message
    assert "alembic_cleandb.enable(config)" in message


def test_enable_adds_the_branch_to_a_production_config(db_url: str) -> None:
    config = alembic_cleandb.enable(alembic_config(db_url, cleandb=False))
    assert alembic_cleandb.enable(config) is config  # idempotent
    command.upgrade(config, "heads")
    insert(db_url, "user", name="x")
    assert alembic_cleandb.clean(db_url) == 1
    assert ScriptDirectory.from_config(config).get_revision(alembic_cleandb.REVISION) is not None


def test_env_options_chains_the_users_hooks() -> None:
    calls: list[Any] = []

    def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001
        calls.append(("object", name))
        return name != "hidden"

    def include_name(name, type_, parent_names):  # noqa: ANN001
        calls.append(("name", name))
        return True

    options = alembic_cleandb.env_options(include_object=include_object, include_name=include_name)
    assert options["include_object"](None, "cleandb_tables", "table", True, None) is False
    assert options["include_object"](None, "hidden", "table", True, None) is False
    assert options["include_object"](None, "users", "table", True, None) is True
    assert options["include_name"]("cleandb", "schema", {}) is False
    assert options["include_name"]("users", "table", {}) is True
    assert calls == [("object", "hidden"), ("object", "users"), ("name", "users")]


def test_env_options_chains_on_version_apply(db_url: str) -> None:
    seen: list[str] = []

    def on_version_apply(*, ctx, step, heads, run_args):  # noqa: ANN001
        seen.append(step.up_revision_id)

    from alembic.migration import MigrationContext

    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        options = alembic_cleandb.env_options(on_version_apply=on_version_apply)
        ctx = MigrationContext.configure(c, opts=options)

        class Step:
            up_revision_id = "x"

        options["on_version_apply"](ctx=ctx, step=Step(), heads=set(), run_args={})
    engine.dispose()
    assert seen == ["x"]


def offline_sql(url: str, target: str, starting: str | None = None) -> str:
    config = alembic_config(url)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, f"{starting}:{target}" if starting else target, sql=True)
    return buffer.getvalue()


@pytest.fixture
def pg_databases(tmp_path) -> Any:
    from conftest import Databases

    dbs = Databases("postgresql", tmp_path)
    yield dbs
    dbs.drop_all()


def test_offline_sql_on_postgresql_installs_and_carries_the_guard(pg_databases) -> None:
    databases = pg_databases
    url = databases.create()
    upgrade(url, "heads", cleandb=False)
    sql = offline_sql(url, "cleandb@head", starting="0002")
    assert "refuses to install tracking in database" in sql
    assert "CREATE OR REPLACE FUNCTION cleandb_truncate(restart_ids boolean DEFAULT true)" in sql
    raw = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    import psycopg

    with psycopg.connect(raw, autocommit=True) as c:
        c.execute(sql.replace("BEGIN;", "").replace("COMMIT;", ""))  # type: ignore[call-overload]
    insert(url, "user", name="x")
    assert alembic_cleandb.clean(url) == 1
    # The same script, applied to a database whose name lacks "test", raises and creates nothing.
    prod_name = f"prod_app_{uuid.uuid4().hex[:6]}"  # (unique: xdist workers share the server)
    prod = databases.create(prod_name)
    raw_prod = sa.make_url(prod).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(raw_prod, autocommit=True) as c:
        with pytest.raises(psycopg.errors.RaiseException, match=prod_name):
            c.execute(sql.replace("BEGIN;", "").replace("COMMIT;", ""))  # type: ignore[call-overload]
        assert c.execute("SELECT to_regnamespace('cleandb')").fetchone() == (None,)


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_offline_sql_elsewhere_says_what_it_cannot_do(databases, backend: str) -> None:
    url = databases.create()
    upgrade(url, "heads", cleandb=False)
    with pytest.raises(alembic_cleandb.ConfigurationError, match="offline .--sql. mode"):
        offline_sql(url, "cleandb@head", starting="0002")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_production_offline_sql_is_unchanged_by_the_hook(db_url: str) -> None:
    # env.py uses env_options(); with the production config its --sql output has no trace
    # of alembic-cleandb.
    config = alembic_config(db_url, cleandb=False)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    assert "cleandb" not in buffer.getvalue()
