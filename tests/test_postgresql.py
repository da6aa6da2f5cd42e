"""PostgreSQL-only behaviour: partitions, several schemas, DDL outside Alembic."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from alembic_cleandb.backends import backend_for
from conftest import Databases, upgrade
from dbutil import connect, count, execute, rows


@pytest.fixture
def pg(tmp_path) -> Any:
    dbs = Databases("postgresql", tmp_path)
    url = dbs.create()
    upgrade(url)
    yield url
    dbs.drop_all()


def test_partitioned_table_written_through_the_parent_and_a_partition(pg: str) -> None:
    execute(
        pg,
        "INSERT INTO measurement (taken, value) VALUES ('2025-05-01', 1), ('2026-05-01', 2)",
    )
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "measurement") == 0
    execute(pg, "INSERT INTO measurement_2026 (id, taken, value) VALUES (100, '2026-06-01', 3)")
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "measurement") == 0
    with connect(pg) as c:
        first = c.execute(
            sa.text("INSERT INTO measurement (taken) VALUES ('2025-01-02') RETURNING id")
        ).scalar()
    assert first == 1


def test_default_tracks_the_current_schema_only(pg: str) -> None:
    execute(pg, "INSERT INTO billing.invoice (amount) VALUES (5)")
    assert alembic_cleandb.clean(pg) == 0
    with connect(pg) as c:
        assert c.execute(sa.text("SELECT count(*) FROM billing.invoice")).scalar() == 1


def test_several_schemas(pg: str) -> None:
    with connect(pg) as c:
        ops = Operations(MigrationContext.configure(c))
        ops.install_clean_tracking(schema=["public", "billing"])
    execute(
        pg,
        "INSERT INTO billing.invoice (amount) VALUES (5)",
        "INSERT INTO \"user\" (name) VALUES ('u')",
    )
    assert alembic_cleandb.clean(pg) == 2
    with connect(pg) as c:
        assert c.execute(sa.text("SELECT count(*) FROM billing.invoice")).scalar() == 0
        assert (
            c.execute(
                sa.text("INSERT INTO billing.invoice (amount) VALUES (1) RETURNING id")
            ).scalar()
            == 1
        )


def test_table_created_by_raw_ddl_inside_a_test_is_tracked(pg: str) -> None:
    execute(pg, 'CREATE TABLE "Made In Test" (id serial PRIMARY KEY, v text)')
    execute(pg, "INSERT INTO \"Made In Test\" (v) VALUES ('a'), ('b')")
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "Made In Test") == 0
    with connect(pg) as c:
        assert (
            c.execute(
                sa.text("INSERT INTO \"Made In Test\" (v) VALUES ('c') RETURNING id")
            ).scalar()
            == 1
        )


def test_renamed_table_keeps_being_tracked(pg: str) -> None:
    execute(pg, 'ALTER TABLE event_log RENAME TO "Event Log"')
    execute(pg, "INSERT INTO \"Event Log\" (message) VALUES ('x')")
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "Event Log") == 0


def test_column_added_to_a_seeded_table_keeps_its_baseline(pg: str) -> None:
    execute(pg, "ALTER TABLE lookup_status ADD COLUMN sort_order int NOT NULL DEFAULT 0")
    execute(pg, "UPDATE lookup_status SET label = 'x'")
    assert alembic_cleandb.clean(pg) == 1
    assert [r[2] for r in rows(pg, "lookup_status")] == ["New", "Paid", "Shipped", "Cancelled"]


def test_views_and_temporary_tables_are_ignored(pg: str) -> None:
    """A write through an updatable view marks the table under it (the view itself is not
    tracked); a temporary table is neither tracked nor marked."""
    with connect(pg) as c:
        c.execute(sa.text("CREATE TEMPORARY TABLE scratch (v int)"))
        c.execute(sa.text("INSERT INTO scratch VALUES (1)"))
        tracked = set(backend_for("postgresql").tracked_tables(c))
    assert "user" in tracked and "active_users" not in tracked and "scratch" not in tracked
    assert alembic_cleandb.clean(pg) == 0
    execute(pg, "INSERT INTO active_users (name) VALUES ('through the view')")
    assert rows(pg, "active_users") == [(1, "through the view")]
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "user") == 0
    with connect(pg) as c:
        again = c.execute(sa.text("INSERT INTO active_users (name) VALUES ('x') RETURNING id"))
        assert again.scalar() == 1  # the counter went back too


def test_reset_is_one_call_of_the_routine(pg: str) -> None:
    execute(pg, "INSERT INTO \"user\" (name) VALUES ('u')")
    with connect(pg) as c:
        assert c.execute(sa.text("SELECT cleandb_truncate()")).scalar() == 1
        assert c.execute(sa.text("SELECT cleandb_truncate()")).scalar() == 0


def test_a_connection_that_marked_a_table_marks_it_again_after_each_reset(pg: str) -> None:
    """The mark trigger skips tables this session already marked in the current epoch: a
    pooled connection reused by the next test must still mark (the epoch moved on)."""
    engine = sa.create_engine(pg, poolclass=sa.pool.StaticPool)
    try:
        with engine.connect() as c:
            for round_ in range(3):
                c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('a'), ('b')"))
                c.commit()
                c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('c')"))
                c.commit()
                assert alembic_cleandb.clean(pg) == 1, round_
                assert count(pg, "user") == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("undo", ["rollback", "savepoint"])
def test_a_rolled_back_mark_is_forgotten_by_the_session_too(pg: str, undo: str) -> None:
    """The session's "already marked" setting is undone with the mark it made: the same
    connection's next write marks the table again."""
    engine = sa.create_engine(pg, poolclass=sa.pool.StaticPool)
    try:
        with engine.connect() as c:
            if undo == "rollback":
                c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('gone')"))
                c.rollback()
            else:
                sp = c.begin_nested()
                c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('gone')"))
                sp.rollback()
                c.commit()
            c.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('kept')"))
            c.commit()
        assert count(pg, "user") == 1
        alembic_cleandb.clean(pg)
        assert count(pg, "user") == 0
        with connect(pg) as c2:
            first = c2.execute(sa.text("INSERT INTO \"user\" (name) VALUES ('x') RETURNING id"))
            assert first.scalar() == 1
    finally:
        engine.dispose()


def test_a_reset_inside_the_writing_transaction_leaves_its_next_writes_marked(pg: str) -> None:
    """Within a transaction that marked a table, later statements skip the mark; a reset run
    inside that transaction takes the mark, so the statements after it must mark again."""
    engine = sa.create_engine(pg, poolclass=sa.pool.StaticPool)
    try:
        with engine.connect() as c:
            c.execute(sa.text('INSERT INTO "user" (name) VALUES (\'before\')'))
            assert c.execute(sa.text("SELECT cleandb_truncate()")).scalar() == 1
            c.execute(sa.text('INSERT INTO "user" (name) VALUES (\'after\')'))
            c.commit()
        assert count(pg, "user") == 1
        assert alembic_cleandb.clean(pg) == 1
        assert count(pg, "user") == 0
    finally:
        engine.dispose()


_AUDITED = (
    'CREATE TABLE "Audit Log" (id bigserial PRIMARY KEY, what text NOT NULL)',
    """CREATE FUNCTION "log it"() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO "Audit Log" (what) VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NULL; END
    $$""",
    'CREATE TRIGGER "log deletes" AFTER DELETE ON "user" FOR EACH ROW EXECUTE FUNCTION "log it"()',
)


@pytest.mark.parametrize("via", ["clean", "sql"])
def test_an_application_trigger_does_not_fire_for_the_reset(pg: str, via: str) -> None:
    """An audit trigger on DELETE would log the reset's own deletes into a table that no reset
    removes again. The reset runs with triggers off (replica mode): through the library's
    connection, and through a plain SELECT cleandb_truncate() on any superuser connection."""
    execute(pg, *_AUDITED)
    execute(pg, "INSERT INTO \"user\" (name) VALUES ('a'), ('b')")
    if via == "clean":
        assert alembic_cleandb.clean(pg) == 1
    else:
        with connect(pg) as c:
            assert c.execute(sa.text("SELECT cleandb_truncate()")).scalar() == 1
            # the caller's transaction goes on with triggers (and marks) on
            assert c.execute(sa.text("SHOW session_replication_role")).scalar() == "origin"
    assert count(pg, "user") == 0
    assert count(pg, "Audit Log") == 0
    # the application's own deletes still fire it, and are reset like any write
    execute(pg, "INSERT INTO \"user\" (name) VALUES ('c')", 'DELETE FROM "user"')
    assert rows(pg, "Audit Log") == [(1, "DELETE user")]
    assert alembic_cleandb.clean(pg) == 2
    assert count(pg, "Audit Log") == 0


def _fk_open(url: str) -> bool:
    with connect(url) as c:
        return bool(c.execute(sa.text("SELECT fk_open FROM cleandb.config")).scalar())


def test_a_foreign_key_from_an_untracked_table_is_checked_row_by_row(pg: str) -> None:
    """billing is not a tracked schema: its rows may reference rows a test wrote to a tracked
    table, so the reset checks that constraint after its statement - it refuses to leave a
    dangling reference and keeps its marks - until that constraint is gone and tracking is
    synced."""
    assert not _fk_open(pg)
    execute(
        pg, 'CREATE TABLE billing.note (id serial PRIMARY KEY, user_id bigint REFERENCES "user")'
    )
    assert _fk_open(pg)  # the event trigger saw the new constraint
    with connect(pg) as c:
        new_user = sa.text("INSERT INTO \"user\" (name) VALUES ('u') RETURNING id")
        user_id = c.execute(new_user).scalar()
        c.execute(sa.text("INSERT INTO billing.note (user_id) VALUES (:u)"), {"u": user_id})
    with pytest.raises(alembic_cleandb.ResetError, match="foreign key"):
        alembic_cleandb.clean(pg)
    assert count(pg, "user") == 1  # nothing was reset, the mark is kept
    execute(pg, "DELETE FROM billing.note")
    assert alembic_cleandb.clean(pg) == 1
    assert count(pg, "user") == 0
    execute(pg, "DROP TABLE billing.note")
    alembic_cleandb.sync(pg)
    assert not _fk_open(pg)
