"""The SQL each dialect emits, checked without a server (Alembic's op_fixture pattern).

Behaviour is tested on real servers elsewhere; these pin what cannot run here (MySQL 8)
and what offline mode prints.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

import alembic_cleandb  # noqa: F401  (registers the operations)
from alembic_cleandb.backends import _clientside, backend_for, mysql, postgresql, sqlite
from alembic_cleandb.operations import DropCleanTrackingOp, InstallCleanTrackingOp


def offline(dialect: str, **opts: Any) -> tuple[Operations, io.StringIO]:
    buffer = io.StringIO()
    context = MigrationContext.configure(
        dialect_name=dialect, opts={"as_sql": True, "output_buffer": buffer, **opts}
    )
    return Operations(context), buffer


def test_postgresql_offline_install_prints_guard_objects_and_triggers() -> None:
    op, buffer = offline("postgresql")
    op.install_clean_tracking(schema=["public", "we'ird"], exclude=["skip me"])
    sql = buffer.getvalue()
    assert sql.index("refuses to install tracking in") < sql.index("CREATE SCHEMA IF NOT EXISTS")
    assert "ARRAY['public', 'we''ird']::text[]" in sql  # values quoted as literals
    assert "ARRAY['alembic_version', 'skip me']::text[]" in sql  # version table excluded
    assert "FOR EACH STATEMENT EXECUTE FUNCTION cleandb.mark()" in sql
    assert "CREATE EVENT TRIGGER cleandb_ddl ON ddl_command_end" in sql
    assert sql.rstrip().endswith("SELECT cleandb.sync(false);")


def test_postgresql_trigger_function_holds_only_the_already_marked_check() -> None:
    """plpgsql compiles a trigger function per session and table: the marking itself lives in
    cleandb.mark_table(), compiled once per session, created before the trigger function."""
    statements = postgresql.install_statements(postgresql.TrackingOptions())
    trigger = next(s for s in statements if "FUNCTION cleandb.mark()" in s)
    marking = next(s for s in statements if "FUNCTION cleandb.mark_table(rel oid)" in s)
    assert statements.index(marking) < statements.index(trigger)
    body = trigger[trigger.index("BEGIN") :]
    assert "INSERT" not in body and "nextval" not in body
    assert "IS DISTINCT FROM coalesce(pg_catalog.pg_sequence_last_value('cleandb.epoch')" in body
    # (the reset's own statements fire it too - ENABLE ALWAYS - and it stands down for them)
    assert body.index("IS DISTINCT FROM coalesce(") < body.index("'cleandb.resetting'")
    assert body.index("'cleandb.resetting'") < body.index("PERFORM cleandb.mark_table(TG_RELID);")
    assert "INSERT INTO cleandb.dirty (relid) VALUES (rel);" in marking
    assert "current_setting('cleandb.resetting', true)" in marking


def test_postgresql_mark_function_runs_as_the_installer_with_a_pinned_search_path() -> None:
    """An application role with DML grants only must be able to mark its tables: the marking
    runs as the installing role (SECURITY DEFINER, search_path pinned, names qualified); the
    trigger, which runs as the writer, needs only what PUBLIC is granted; every trigger fires
    in replica mode too."""
    statements = postgresql.install_statements(postgresql.TrackingOptions())
    marking = next(s for s in statements if "FUNCTION cleandb.mark_table(rel oid)" in s)
    header = marking[: marking.index("$cleandb$")]
    assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in header
    assert "pg_catalog.nextval('cleandb.tickets'::pg_catalog.regclass)" in marking
    assert "GRANT USAGE ON SCHEMA cleandb TO PUBLIC" in statements
    assert (
        "GRANT SELECT ON SEQUENCE cleandb.epoch, cleandb.tickets, cleandb.drift TO PUBLIC"
        in statements
    )
    assert (
        "GRANT EXECUTE ON FUNCTION cleandb.mark_table(oid), cleandb.mark() TO PUBLIC" in statements
    )
    attach = next(s for s in statements if "FUNCTION cleandb.attach(rel regclass)" in s)
    assert "ENABLE ALWAYS TRIGGER cleandb_mark" in attach
    reset = next(s for s in statements if "FUNCTION cleandb.reset(restart_ids boolean)" in s)
    assert "has_table_privilege('cleandb.dirty', 'DELETE')" in reset


def test_postgresql_reset_switches_triggers_off_and_checks_references_to_untracked_tables() -> None:
    """The reset's writes run in replica mode (no application trigger, no foreign-key check or
    action) where the role may say so - also when a foreign key joins a tracked and an untracked
    table; exactly those constraints are checked after the reset's statement. A switch made
    for one reset is undone before it returns; every function it needs is created before it."""
    statements = postgresql.install_statements(postgresql.TrackingOptions())
    reset = next(s for s in statements if "FUNCTION cleandb.reset(restart_ids boolean)" in s)
    fks = next(s for s in statements if "FUNCTION cleandb.check_fks(rel regclass)" in s)
    refs = next(s for s in statements if "FUNCTION cleandb.check_references(" in s)
    may = next(s for s in statements if "FUNCTION cleandb.may_skip_triggers()" in s)
    on_ddl = next(s for s in statements if "FUNCTION cleandb.on_ddl()" in s)
    attach_new = next(s for s in statements if "FUNCTION cleandb.attach_new()" in s)
    assert statements.index(fks) < statements.index(attach_new)
    assert statements.index(may) < statements.index(reset)
    assert statements.index(refs) < statements.index(reset)
    assert "crossing oid[] NOT NULL DEFAULT '{}'" in "\n".join(statements)
    body = reset[reset.index("BEGIN") :]
    assert "'origin'" not in body
    replica = body.index("PERFORM set_config('session_replication_role', 'replica', true);")
    execute = body.index("EXECUTE 'WITH ' || q")
    check = body.index("PERFORM cleandb.check_references(units);")
    restore = body.index("PERFORM set_config('session_replication_role', role, true);")
    assert body.index("IF (fk_open") < replica < execute < check < restore
    assert "AND cleandb.may_skip_triggers() THEN" in body
    assert "NOT g.tgisinternal AND g.tgname <> 'cleandb_mark'" in body
    assert "ERRCODE = 'foreign_key_violation'" in refs and "NOT EXISTS" in refs
    assert "has_parameter_privilege('session_replication_role', 'SET')" in may
    assert "PERFORM cleandb.check_fks(NULL);" in attach_new
    assert "PERFORM cleandb.check_fks(r);" in on_ddl


def test_postgresql_guard_embeds_the_allowed_name_as_a_literal(monkeypatch) -> None:
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", "o'brien")
    op, buffer = offline("postgresql")
    op.install_clean_tracking()
    assert "current_database() IS DISTINCT FROM 'o''brien'" in buffer.getvalue()
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE")
    op, buffer = offline("postgresql")
    op.install_clean_tracking()
    assert "current_database() IS DISTINCT FROM NULL" in buffer.getvalue()


def test_postgresql_custom_version_table_is_excluded() -> None:
    op, buffer = offline("postgresql", version_table="my_versions")
    op.install_clean_tracking()
    assert "'my_versions'" in buffer.getvalue()


def test_postgresql_offline_drop() -> None:
    op, buffer = offline("postgresql")
    op.drop_clean_tracking()
    sql = buffer.getvalue()
    # Every object found in the catalog, whichever version created it (test_upgrade.py).
    assert "EXECUTE format('DROP EVENT TRIGGER IF EXISTS %I', r.evtname);" in sql
    assert "EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', r.tgname, r.rel);" in sql
    assert "DROP SCHEMA cleandb;" in sql  # never CASCADE: foreign objects make it fail
    assert "CASCADE" not in sql


@pytest.mark.parametrize("dialect", ["mysql", "mariadb", "sqlite"])
def test_client_side_dialects_refuse_offline_install_clearly(dialect: str) -> None:
    op, _ = offline(dialect)
    with pytest.raises(alembic_cleandb.ConfigurationError, match="offline .--sql. mode"):
        op.install_clean_tracking()


def test_mysql_trigger_names_stay_within_64_characters_for_any_table() -> None:
    backend = mysql.MySQLBackend()
    ddl = backend.trigger_ddl("`" + "x" * 64 + "`", 2_147_483_647, "i", "INSERT")
    name = ddl.split()[2]
    assert len(name) <= 64
    assert name == "cleandb_2147483647_i"


@pytest.mark.parametrize("sequence", [True, False])
def test_mysql_procedure_never_prepares_create_trigger(sequence: bool) -> None:
    """MySQL 8 rejects CREATE TRIGGER in prepared statements (error 1295): triggers are
    created from the client; the procedure only prepares the stored reset statements. (The
    whole procedure is compared with tests/golden/ in test_mysql_speed.py.)"""
    body = mysql._procedure([(3, "`lookup`")], sequence=sequence)
    assert "CREATE TRIGGER" not in body.upper()
    assert "PREPARE cleandb_stmt FROM @cleandb_sql;" in body


def test_mysql_statements_per_table_state() -> None:
    backend = mysql.MySQLBackend()
    empty = _clientside.TableState("t", rows=0, counter=1, columns=("id",))
    assert backend.statements("`t`", "`cleandb_b1`", "`id`", empty) == (
        "TRUNCATE TABLE `t`",
        None,
        None,
    )
    moved = _clientside.TableState("t", rows=0, counter=7, columns=("id",))
    assert (
        backend.statements("`t`", "`cleandb_b1`", "`id`", moved)[2]
        == "ALTER TABLE `t` AUTO_INCREMENT = 7"
    )
    seeded = _clientside.TableState("t", rows=3, counter=4, columns=("id", "v"))
    assert backend.statements("`t`", "`cleandb_b1`", "`id`, `v`", seeded) == (
        "DELETE FROM `t`",
        "INSERT INTO `t` (`id`, `v`) SELECT `id`, `v` FROM `cleandb_b1`",
        "ALTER TABLE `t` AUTO_INCREMENT = 4",
    )


class Recorder:
    """Stands in for a connection where only the emitted SQL matters: every query finds an
    empty table, no metadata rows and the default auto-increment settings."""

    def __init__(self, dialect_name: str) -> None:
        self.sql: list[str] = []
        self.dialect = sa.make_url(f"{dialect_name}+pymysql://").get_dialect()()
        assert self.dialect.name == dialect_name

    def exec_driver_sql(self, sql: str, params: Any = None, execution_options: Any = None) -> Any:
        self.sql.append(sql)

        class Result:
            def fetchall(self) -> list[Any]:
                return []

            def __iter__(self) -> Any:
                return iter([])

            def one(self) -> tuple[int, int]:
                return (1, 1)

            def scalar_one(self) -> int:
                return 0

        return Result()


@pytest.mark.parametrize("dialect", ["mysql", "mariadb"])
def test_mysql8_information_schema_cache_is_disabled_only_on_mysql(dialect: str) -> None:
    recorder = Recorder(dialect)
    mysql.MySQLBackend().table_states(recorder, [])  # type: ignore[arg-type]
    assert recorder.sql == []  # nothing to read, nothing sent
    states = mysql.MySQLBackend().table_states(recorder, ["t"])  # type: ignore[arg-type]
    assert states == [_clientside.TableState("t", rows=0, counter=None, columns=())]
    expiry = ["SET SESSION information_schema_stats_expiry = 0"] if dialect == "mysql" else []
    # A few tables (a scoped baseline's push): information_schema is read for them by name.
    assert recorder.sql == [
        *expiry,
        # (TABLE_TYPE: MariaDB's system-versioned tables are never truncated)
        "SELECT TABLE_NAME, AUTO_INCREMENT, TABLE_TYPE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s)",
        "SELECT TABLE_NAME, COLUMN_NAME, EXTRA, DATA_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s) "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        # the tables with application triggers (DELETE ones: truncated instead), and the
        # primary keys (in-place restore)
        "SELECT DISTINCT EVENT_OBJECT_TABLE, EVENT_MANIPULATION FROM "
        "information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() "
        "AND LEFT(TRIGGER_NAME, 8) <> 'cleandb_' AND EVENT_OBJECT_TABLE IN (%s)",
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY' AND TABLE_NAME IN (%s) "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        "SELECT @@auto_increment_increment, @@auto_increment_offset",
        "SELECT COUNT(*) FROM `t`",
    ]
    # Many (a sync): the whole schema in one pass each.
    recorder.sql.clear()
    many = [f"t{i}" for i in range(mysql.LOOKUP_TABLES + 1)]
    mysql.MySQLBackend().table_states(recorder, many)  # type: ignore[arg-type]
    assert recorder.sql[len(expiry)] == (
        "SELECT TABLE_NAME, AUTO_INCREMENT, TABLE_TYPE FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE()"
    )
    assert all(" IN (" not in sql for sql in recorder.sql)


def test_sqlite_trigger_is_one_guarded_insert() -> None:
    ddl = sqlite.SQLiteBackend().trigger_ddl('"t"', 5, "u", "UPDATE")
    assert ddl == (
        'CREATE TRIGGER IF NOT EXISTS cleandb_5_u AFTER UPDATE ON "t" BEGIN INSERT INTO '
        "cleandb_dirty (tid, kind) SELECT 5, 'u' WHERE NOT EXISTS (SELECT 1 FROM cleandb_dirty "
        "WHERE tid = 5 AND kind = 'u'); END"
    )


def test_registry_picks_backend_by_dialect_name() -> None:
    assert isinstance(backend_for("postgresql"), postgresql.PostgreSQLBackend)
    assert isinstance(backend_for("mysql"), mysql.MySQLBackend)
    assert isinstance(backend_for("mariadb"), mysql.MySQLBackend)
    assert isinstance(backend_for("sqlite"), sqlite.SQLiteBackend)
    with pytest.raises(alembic_cleandb.ConfigurationError, match="oracle"):
        backend_for("oracle")


def test_operations_reverse_and_render_in_autogenerate() -> None:
    install = InstallCleanTrackingOp(schema=["app"], exclude=["t"])
    drop = install.reverse()
    assert isinstance(drop, DropCleanTrackingOp)
    assert drop.reverse().to_diff_tuple() == install.to_diff_tuple()
    code = render_python_code(ops.UpgradeOps(ops=[install, InstallCleanTrackingOp()]))
    assert "op.install_clean_tracking(schema=['app'], exclude=['t'])" in code
    assert "op.install_clean_tracking()" in code
    assert "op.drop_clean_tracking(schema=['app'], exclude=['t'])" in render_python_code(
        ops.UpgradeOps(ops=[drop])
    )
