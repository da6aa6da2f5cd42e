"""The reset semantics of the core issue, on real PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from alembic_cleandb import NotInstalledError, UnsafeDatabaseError
from dbutil import connect, count, dump, execute, insert, long_table_name, q, rows

SEED = [
    (1, "new", "New"),
    (2, "paid", "Paid"),
    (3, "shipped", "Shipped"),
    (4, "cancelled", "Cancelled"),
]


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_two_tests_that_each_insert_a_first_row_both_get_id_1(migrated: str, order: str) -> None:
    # The two "id == 1" tests from the Flask-SQLAlchemy question, run back to back.
    names = ["Fran Clan", "Stan Clan"]
    if order == "second-then-first":
        names.reverse()
    for name in names:
        assert insert(migrated, "user", name=name) == 1
        assert rows(migrated, "user") == [(1, name)]
        assert alembic_cleandb.clean(migrated) == 1


def test_nothing_written_resets_nothing(migrated: str) -> None:
    assert alembic_cleandb.clean(migrated) == 0


def test_seeded_lookup_updated_deleted_and_inserted_is_restored(migrated: str) -> None:
    assert rows(migrated, "lookup_status") == SEED
    execute(
        migrated,
        "UPDATE lookup_status SET label = 'changed' WHERE code = 'new'",
        "DELETE FROM lookup_status WHERE code = 'paid'",
        "INSERT INTO lookup_status (code, label) VALUES ('extra', 'Extra')",
    )
    alembic_cleandb.clean(migrated)
    assert rows(migrated, "lookup_status") == SEED
    # The sequence continues as at baseline: the next id is 5, as after the migrations.
    assert insert(migrated, "lookup_status", code="later", label="Later") == 5


def test_seeded_lookup_truncated_is_restored(migrated: str, backend: str) -> None:
    with connect(migrated) as c:
        if backend == "sqlite":
            c.execute(sa.text("DELETE FROM lookup_status"))
        elif backend == "postgresql":
            c.execute(sa.text("TRUNCATE lookup_status CASCADE"))
        else:
            c.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            c.execute(sa.text("TRUNCATE TABLE lookup_status"))
            c.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
    assert count(migrated, "lookup_status") == 0
    alembic_cleandb.clean(migrated)
    assert rows(migrated, "lookup_status") == SEED


def test_seed_row_referenced_by_an_unwritten_table_is_restored_in_place(migrated: str) -> None:
    # shipment references lookup_status ON DELETE RESTRICT; a test that changes a seed row
    # must not make the reset delete a referenced row.
    user = insert(migrated, "user", name="a")
    order = insert(migrated, "Order", user_id=user, total=1)
    insert(migrated, "shipment", order_id=order, status_id=2)
    alembic_cleandb.set_baseline(migrated)  # the shipment is now baseline data
    execute(migrated, "UPDATE lookup_status SET label = 'PAID!' WHERE id = 2")
    assert alembic_cleandb.clean(migrated) == 1
    assert rows(migrated, "lookup_status") == SEED
    assert count(migrated, "shipment") == 1


def test_writes_from_another_connection_and_engine_are_reset(migrated: str, engine_factory) -> None:
    other = engine_factory(migrated)
    with other.begin() as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
    with engine_factory(migrated).connect() as c:  # autocommit-free, committed explicitly
        c.execute(sa.text(f"INSERT INTO {q(c, 'event_log')} (message) VALUES ('m')"))
        c.commit()
    assert alembic_cleandb.clean(migrated) == 2
    assert count(migrated, "user") == 0
    assert count(migrated, "event_log") == 0


def test_rolled_back_writes_leave_nothing_to_reset(migrated: str, engine_factory) -> None:
    with engine_factory(migrated).connect() as c:
        c.execute(sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES ('x')"))
        c.rollback()
    assert alembic_cleandb.clean(migrated) == 0


def test_foreign_keys_parent_child_self_reference_composite_key(migrated: str) -> None:
    long_name = long_table_name(migrated)
    user = insert(migrated, "user", name="u")
    order = insert(migrated, "Order", user_id=user, total=3)
    insert(migrated, "order line", order_id=order, line_no=1, qty=2)
    insert(migrated, "user-profile", user_id=user, bio="hi")
    insert(migrated, "shipment", order_id=order, status_id=1)
    root = insert(migrated, "category", name="root")
    insert(migrated, "category", name="leaf", parent_id=root)
    insert(migrated, long_name, note="long")
    assert alembic_cleandb.clean(migrated) == 7
    for table in ("user", "Order", "order line", "user-profile", "shipment", "category", long_name):
        assert count(migrated, table) == 0, table
    assert rows(migrated, "lookup_status") == SEED
    assert insert(migrated, "user", name="again") == 1
    assert insert(migrated, "category", name="again") == 1


def test_table_without_primary_key(migrated: str) -> None:
    execute(migrated, "INSERT INTO event_log (message) VALUES ('a'), ('a'), ('b')")
    assert alembic_cleandb.clean(migrated) == 1
    assert count(migrated, "event_log") == 0


def test_tables_not_written_are_not_touched(migrated: str, backend: str) -> None:
    before = dump(migrated)
    if backend == "postgresql":
        with connect(migrated) as c:
            xmins = c.execute(sa.text("SELECT xmin::text FROM lookup_status ORDER BY id")).all()
    insert(migrated, "user", name="x")
    assert alembic_cleandb.clean(migrated) == 1
    assert dump(migrated) == before
    if backend == "postgresql":
        with connect(migrated) as c:
            assert (
                c.execute(sa.text("SELECT xmin::text FROM lookup_status ORDER BY id")).all()
                == xmins
            )


def test_table_created_by_a_later_migration_is_tracked(db_url: str) -> None:
    from conftest import upgrade

    upgrade(db_url, "0001", cleandb=False)
    upgrade(db_url, "cleandb@head")  # tracking installed before 0002 exists in the database
    assert alembic_cleandb.clean(db_url) == 0
    upgrade(db_url, "heads")  # 0002: creates audit_entry, seeds one more lookup row
    assert rows(db_url, "lookup_status") == SEED
    insert(db_url, "audit_entry", what="x")
    execute(db_url, "DELETE FROM lookup_status WHERE id = 4")
    assert alembic_cleandb.clean(db_url) == 2
    assert count(db_url, "audit_entry") == 0
    assert rows(db_url, "lookup_status") == SEED
    assert insert(db_url, "audit_entry", what="y") == 1


def test_version_table_and_views_are_never_tracked(migrated: str) -> None:
    with connect(migrated) as c:
        version = c.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        c.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
    assert alembic_cleandb.clean(migrated) == 0
    with connect(migrated) as c:
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).all() == version


def test_set_baseline_makes_current_rows_the_baseline(migrated: str) -> None:
    insert(migrated, "user", name="seeded by a session fixture")
    alembic_cleandb.set_baseline(migrated)
    insert(migrated, "user", name="written by a test")
    execute(migrated, "UPDATE lookup_status SET label = 'x'")
    alembic_cleandb.clean(migrated)
    assert rows(migrated, "user") == [(1, "seeded by a session fixture")]
    assert rows(migrated, "lookup_status") == SEED
    assert insert(migrated, "user", name="next") == 2


def test_install_twice_is_idempotent(migrated: str) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    before = dump(migrated)
    with connect(migrated) as c:
        Operations(MigrationContext.configure(c)).install_clean_tracking()
    insert(migrated, "user", name="x")
    assert alembic_cleandb.clean(migrated) == 1
    assert dump(migrated) == before


def test_refuses_a_database_whose_name_lacks_test(databases, backend: str, monkeypatch) -> None:
    from conftest import upgrade

    prod_app = f"prod_app_{uuid.uuid4().hex[:6]}"  # (unique: xdist workers share the server)
    url = databases.create(prod_app)
    monkeypatch.delenv("CLEANDB_ALLOW_DATABASE", raising=False)
    upgrade(url, "0001", cleandb=False)
    before = dump(url)
    with pytest.raises(UnsafeDatabaseError, match=prod_app):
        upgrade(url, "cleandb@head")
    assert dump(url) == before
    with connect(url) as c:
        own = [t for t in sa.inspect(c).get_table_names() if t.startswith("cleandb")]
        assert own == []
        assert c.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("0001",)]
    for call in (alembic_cleandb.clean, alembic_cleandb.set_baseline, alembic_cleandb.sync):
        with pytest.raises(UnsafeDatabaseError, match=f"CLEANDB_ALLOW_DATABASE={prod_app}"):
            call(url)
    # Allowed explicitly, by its exact name:
    monkeypatch.setenv("CLEANDB_ALLOW_DATABASE", prod_app)
    upgrade(url, "cleandb@head")
    assert alembic_cleandb.clean(url) == 0


def test_reset_refuses_database_without_tracking(db_url: str) -> None:
    with pytest.raises(NotInstalledError, match="cleandb upgrade cleandb@head"):
        alembic_cleandb.clean(db_url)


def test_url_forms_are_accepted(migrated: str, backend: str) -> None:
    url = sa.make_url(migrated)
    plain = {"postgresql": "postgresql", "mariadb": "mysql", "sqlite": "sqlite"}[backend]
    forms = [url.set(drivername=plain).render_as_string(hide_password=False), migrated]
    if backend == "mariadb":
        forms.append(url.set(drivername="mariadb").render_as_string(hide_password=False))
        forms.append(url.set(drivername="mysql+pymysql").render_as_string(hide_password=False))
    for form in forms:
        insert(migrated, "user", name="x")
        assert alembic_cleandb.clean(form) == 1, form
    engine = sa.create_engine(migrated)
    try:
        insert(migrated, "user", name="x")
        assert alembic_cleandb.clean(engine) == 1
        insert(migrated, "user", name="x")
        with engine.connect() as connection:
            assert alembic_cleandb.clean(connection) == 1
    finally:
        engine.dispose()


_AUDIT_TRIGGER = {
    "postgresql": (
        "CREATE FUNCTION log_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO audit (what) VALUES (TG_OP); RETURN NULL; END $$",
        'CREATE TRIGGER log_it AFTER DELETE ON "user" FOR EACH ROW EXECUTE FUNCTION log_it()',
        'CREATE TRIGGER log_it AFTER INSERT ON "lookup_status" FOR EACH ROW '
        "EXECUTE FUNCTION log_it()",
    ),
    "sqlite": (
        'CREATE TRIGGER log_it AFTER DELETE ON "user" BEGIN '
        "INSERT INTO audit (what) VALUES ('DELETE'); END",
        'CREATE TRIGGER log_it_too AFTER INSERT ON "lookup_status" BEGIN '
        "INSERT INTO audit (what) VALUES ('INSERT'); END",
    ),
    "mariadb": (
        "CREATE TRIGGER log_it AFTER DELETE ON `user` FOR EACH ROW "
        "INSERT INTO audit (what) VALUES ('DELETE')",
        "CREATE TRIGGER log_it_too AFTER INSERT ON lookup_status FOR EACH ROW "
        "INSERT INTO audit (what) VALUES ('INSERT')",
    ),
}


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite"], indirect=True)
def test_an_application_trigger_leaves_nothing_behind_after_the_reset(
    migrated: str, backend: str
) -> None:
    """An application's audit trigger logs deletes from "user" and inserts into the seeded
    lookup table. The reset's own deletes and restores must not leave log rows behind:
    PostgreSQL fires no trigger for them (replica mode); MariaDB and SQLite reset what the
    trigger wrote in a second pass."""
    key = {
        "postgresql": "bigserial PRIMARY KEY",
        "mariadb": "BIGINT AUTO_INCREMENT PRIMARY KEY",
        "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    }[backend]
    execute(migrated, f"CREATE TABLE audit (id {key}, what text NOT NULL)")
    execute(migrated, *_AUDIT_TRIGGER[backend])
    alembic_cleandb.sync(migrated)
    user = sa.make_url(migrated).get_dialect()().identifier_preparer.quote("user")
    for _ in range(2):
        execute(
            migrated,
            f"INSERT INTO {user} (name) VALUES ('a'), ('b')",
            "DELETE FROM lookup_status WHERE code = 'paid'",
        )
        assert count(migrated, "audit") == 0  # (the test's own writes log nothing yet)
        assert alembic_cleandb.clean(migrated) >= 2
        assert count(migrated, "audit") == 0
        assert rows(migrated, "lookup_status") == SEED
    # the application's own writes are logged, and reset like any other
    execute(migrated, f"INSERT INTO {user} (name) VALUES ('c')", f"DELETE FROM {user}")
    assert [r[1] for r in rows(migrated, "audit")] == ["DELETE"]
    assert alembic_cleandb.clean(migrated) == 2
    assert count(migrated, "audit") == 0
    assert insert(migrated, "audit", what="first") == 1


_PING_PONG = {  # restoring ping (an INSERT) updates pong; resetting pong (a DELETE) updates ping
    # (SQLite: the reset drops the written tables' own triggers while it runs, so these settle;
    # test_schemas_sqlite.py::test_triggers_that_write_each_other_settle_in_one_pass)
    "mariadb": (
        "CREATE TRIGGER ping_ins AFTER INSERT ON ping FOR EACH ROW UPDATE pong SET v = v + 1",
        "CREATE TRIGGER pong_del AFTER DELETE ON pong FOR EACH ROW UPDATE ping SET v = v + 1",
    ),
}


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_triggers_that_keep_writing_each_other_make_the_reset_fail(
    migrated: str, backend: str
) -> None:
    """Two seeded tables whose triggers write each other never settle: restoring one writes
    the other, whose reset writes the first. The reset stops after a few passes, says so, and
    keeps the marks of what it could not settle. Without the second trigger, the second pass
    settles it."""
    execute(
        migrated,
        "CREATE TABLE ping (v INTEGER)",
        "CREATE TABLE pong (v INTEGER)",
        "INSERT INTO ping (v) VALUES (1)",
        "INSERT INTO pong (v) VALUES (1)",
    )
    alembic_cleandb.set_baseline(migrated)  # both seeded, one row each
    execute(migrated, *_PING_PONG[backend])
    execute(migrated, "UPDATE ping SET v = 5")
    with pytest.raises(alembic_cleandb.ResetError, match="triggers keep writing tracked tables"):
        alembic_cleandb.clean(migrated)
    execute(migrated, "DROP TRIGGER pong_del")
    assert alembic_cleandb.clean(migrated) >= 1
    assert rows(migrated, "ping") == [(1,)]
    assert rows(migrated, "pong") == [(1,)]
