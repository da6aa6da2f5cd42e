"""Scoped baselines (layers) on the client-side backends, MariaDB and SQLite, through
:class:`~alembic_cleandb.Cleaner`'s ``push_baseline`` / ``pop_baseline`` / ``baseline_depth``
(the backends' methods on the connection the Cleaner holds).

A layer keeps, for every table written before the push, the baseline it had; the tables take
their current rows and counters as their baseline. The per-test reset goes back to the
innermost layer; a pop restores the previous baseline (rows and counters) and resets to it.
The pytest fixture's behaviour (all three backends) is tested in scope15's pytester tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import alembic_cleandb
from alembic_cleandb import Cleaner, ConfigurationError, ResetError
from alembic_cleandb.backends import backend_for
from alembic_cleandb.backends.base import LOCK_TIMEOUT, Executor
from conftest import upgrade
from dbutil import connect, count, dump, execute, insert, long_table_name, q, rows
from golden import assert_matches_golden, render

CLIENTSIDE = pytest.mark.parametrize("backend", ["mariadb", "sqlite"], indirect=True)

#: Tables made outside the migrations (then attached by sync()): an AUTOINCREMENT table on
#: SQLite (sqlite_sequence), and two names that differ only in letter case and accent (the
#: MySQL family's bookkeeping compares names byte for byte).
COUNTED = 'Counted "café"'
TWIN = 'counted "cafe"'


def _counted_tables(url: str) -> None:
    with connect(url) as c:
        for name in (COUNTED, TWIN):
            if c.dialect.name == "sqlite":
                ddl = f"CREATE TABLE {q(c, name)} (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"
            else:
                ddl = f"CREATE TABLE {q(c, name)} (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)"
            c.execute(sa.text(ddl))
    alembic_cleandb.sync(url)


@pytest.fixture
def url(migrated: str) -> str:
    _counted_tables(migrated)
    return migrated


@pytest.fixture
def cleaner(url: str) -> Iterator[Cleaner]:
    with Cleaner(url, lock_timeout=1) as c:
        yield c


def push(c: Cleaner) -> int:
    return c.push_baseline()


def pop(c: Cleaner) -> int:
    return c.pop_baseline()


def depth(c: Cleaner) -> int:
    return c.baseline_depth()


def state(url: str) -> dict[str, Any]:
    """Every user table's rows, and the next key of each auto-increment table (taken by an
    insert that is rolled back, so that nothing changes)."""
    found: dict[str, Any] = dump(url)
    for table in ("user", COUNTED, TWIN, long_table_name(url)):
        found[f"next {table}"] = _next_key(url, table)
    return found


def _next_key(url: str, table: str) -> int:
    """The key the next insert gets, read without writing (an insert rolled back would move
    MariaDB's counter)."""
    with connect(url) as c:
        if c.dialect.name == "sqlite":
            ddl = c.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
            ).scalar_one()
            if "AUTOINCREMENT" in ddl.upper():
                seq = c.execute(
                    sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table}
                ).scalar()
                return int(seq or 0) + 1
            top = c.execute(sa.text(f"SELECT MAX(rowid) FROM {q(c, table)}")).scalar()
            return int(top or 0) + 1
        return int(
            c.execute(
                sa.text(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"
                ),
                {"t": table},
            ).scalar_one()
        )


def seed(url: str, tag: str) -> None:
    """Writes of a seed fixture: a table empty at baseline (``user``, auto-increment), a seeded
    one (``lookup_status``), one without a primary key (``event_log``), one keyed without
    auto-increment (``order line``) and the awkward names (``COUNTED``, the 64-character one)."""
    user = insert(url, "user", name=f"{tag} user")
    insert(url, "lookup_status", code=f"{tag}-code", label=f"{tag} label")
    execute(
        url,
        "INSERT INTO event_log (message) VALUES (:m)",
        m=f"{tag} event",
    )
    with connect(url) as c:
        order = c.execute(
            sa.text(f"INSERT INTO {q(c, 'Order')} (user_id, total) VALUES (:u, 5)"), {"u": user}
        ).lastrowid
        c.execute(
            sa.text(f"INSERT INTO {q(c, 'order line')} (order_id, line_no, qty) VALUES (:o, 1, 2)"),
            {"o": order},
        )
    insert(url, COUNTED, v=f"{tag} counted")
    insert(url, long_table_name(url), note=tag)


def scribble(url: str) -> None:
    """A test's writes, over seed and layer rows alike."""
    insert(url, "user", name="test user")
    insert(url, COUNTED, v="test counted")
    insert(url, TWIN, v="test twin")
    with connect(url) as c:
        c.execute(sa.text("DELETE FROM lookup_status WHERE id = 1"))
        c.execute(sa.text("UPDATE lookup_status SET label = 'changed'"))
        c.execute(sa.text("DELETE FROM event_log"))
        c.execute(sa.text(f"UPDATE {q(c, 'order line')} SET qty = qty + 10"))


@CLIENTSIDE
def test_a_layer_is_the_baseline_of_the_resets_and_its_pop_restores_the_previous(
    url: str, cleaner: Cleaner
) -> None:
    before = state(url)
    assert depth(cleaner) == 0
    seed(url, "layer")
    seeded = state(url)
    assert push(cleaner) == 1
    assert depth(cleaner) == 1
    assert cleaner.backend.dirty_tables(cleaner._connection) == []  # its marks are cleared
    assert cleaner.reset() == 0  # nothing written since the push
    for _ in range(2):  # a test's writes go back to the layer, every time
        scribble(url)
        assert cleaner.reset() > 0
        assert state(url) == seeded
    scribble(url)
    assert pop(cleaner) == 0
    assert depth(cleaner) == 0
    assert state(url) == before
    assert before["next user"] == 1 and seeded["next user"] == 2
    assert seeded[f"next {COUNTED}"] == before[f"next {COUNTED}"] + 1
    # and the plain reset is the migrations' again
    scribble(url)
    assert cleaner.reset() > 0
    assert state(url) == before


@CLIENTSIDE
def test_three_nested_layers(url: str, cleaner: Cleaner) -> None:
    states = [state(url)]
    for level in (1, 2, 3):
        seed(url, f"level {level}")
        if level == 3:  # the innermost layer also removes a seed row and empties a table
            execute(url, "DELETE FROM lookup_status WHERE id = 2", "DELETE FROM event_log")
        assert push(cleaner) == level
        states.append(state(url))
    assert count(url, "user") == 3 and states[3]["next user"] == 4
    for level in (3, 2, 1):
        scribble(url)
        cleaner.reset()
        assert state(url) == states[level]
        scribble(url)
        assert pop(cleaner) == level - 1
        assert state(url) == states[level - 1]
    assert depth(cleaner) == 0


@CLIENTSIDE
def test_a_layer_without_writes_and_one_that_only_some_tables_join(
    url: str, cleaner: Cleaner
) -> None:
    before = state(url)
    assert push(cleaner) == 1  # nothing written: a layer all the same
    insert(url, TWIN, v="only the twin")  # its case-and-accent twin keeps its baseline
    twin = state(url)
    assert push(cleaner) == 2
    insert(url, COUNTED, v="test")
    cleaner.reset()
    assert state(url) == twin and rows(url, COUNTED) == []
    assert pop(cleaner) == 1
    assert state(url) == before
    assert pop(cleaner) == 0
    assert state(url) == before


@CLIENTSIDE
def test_a_seeded_table_emptied_by_the_seed_joins_the_layer(url: str, cleaner: Cleaner) -> None:
    """On MariaDB a TRUNCATE fires no trigger: the push finds the emptied seeded table as the
    reset does (SQLite has no TRUNCATE: the DELETE marks it)."""
    before = state(url)
    with connect(url) as c:
        if c.dialect.name == "sqlite":
            c.execute(sa.text("DELETE FROM lookup_status"))
        else:
            c.execute(sa.text("SET foreign_key_checks = 0"))
            c.execute(sa.text("TRUNCATE TABLE lookup_status"))
            c.execute(sa.text("SET foreign_key_checks = 1"))
    push(cleaner)
    insert(url, "lookup_status", id=1, code="test", label="test")
    cleaner.reset()
    assert rows(url, "lookup_status") == []
    pop(cleaner)
    assert state(url) == before


@CLIENTSIDE
def test_pop_without_a_layer_is_refused(url: str, cleaner: Cleaner) -> None:
    insert(url, "user", name="kept")
    with pytest.raises(ConfigurationError, match="no scoped baseline is open"):
        pop(cleaner)
    assert count(url, "user") == 1  # nothing was reset either
    assert depth(cleaner) == 0


@CLIENTSIDE
def test_set_baseline_and_migration_syncs_are_refused_while_layers_are_open(
    url: str, cleaner: Cleaner
) -> None:
    seed(url, "layer")
    push(cleaner)
    insert(url, "user", name="test")
    with pytest.raises(ConfigurationError, match="End the scopes first"):
        alembic_cleandb.set_baseline(url)
    with (
        connect(url, begin=False) as c,
        pytest.raises(ConfigurationError, match="End the scopes first"),
    ):
        cleaner.backend.sync(Executor.for_connection(c), after_migration=True)
    assert depth(cleaner) == 1
    cleaner.reset()  # the layer is still the baseline
    assert count(url, "user") == 1
    pop(cleaner)
    alembic_cleandb.set_baseline(url)  # fine once the scopes are ended


@CLIENTSIDE
def test_tables_created_inside_a_layer_are_attached_and_keep_their_baseline(
    url: str, cleaner: Cleaner
) -> None:
    seed(url, "layer")
    push(cleaner)
    with connect(url) as c:
        c.execute(sa.text(f"CREATE TABLE {q(c, 'late table')} (id INTEGER PRIMARY KEY, v TEXT)"))
        c.execute(sa.text(f"INSERT INTO {q(c, 'late table')} (id, v) VALUES (1, 'late')"))
    alembic_cleandb.sync(url)  # (not a migration: allowed inside a layer)
    seeded = state(url)
    scribble(url)
    with connect(url) as c:
        c.execute(sa.text(f"DELETE FROM {q(c, 'late table')}"))
    cleaner.reset()
    assert state(url) == seeded and rows(url, "late table") == [(1, "late")]
    pop(cleaner)
    assert rows(url, "late table") == [(1, "late")]


@CLIENTSIDE
def test_a_pop_whose_reset_fails_is_finished_by_the_next_reset_or_pop(
    url: str, cleaner: Cleaner
) -> None:
    """A failure midway: another session holds a lock the pop's reset needs. On MariaDB the
    pop has already put the previous baselines back (its DDL commits as it goes) and left the
    tables marked: depth is back, and the next reset finishes the pop. On SQLite the pop is
    one transaction: nothing changed, and the pop can be run again."""
    before = state(url)
    seed(url, "layer")
    push(cleaner)
    scribble(url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    holder = engine.connect()
    try:
        if engine.dialect.name == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock of the whole file
        else:
            holder.exec_driver_sql("SELECT * FROM `user`")  # a shared lock on its metadata
        with pytest.raises(ResetError, match="ending a scoped baseline in .* lock") as failed:
            pop(cleaner)
        assert cleaner.backend.error_kind(failed.value.__cause__) == LOCK_TIMEOUT
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    if url.startswith("sqlite"):
        assert depth(cleaner) == 1
        assert pop(cleaner) == 0
    else:
        assert depth(cleaner) == 0
        assert cleaner.backend.has_marks(cleaner._connection)
        cleaner.reset()
    assert state(url) == before


@CLIENTSIDE
def test_a_push_that_fails_midway_leaves_nothing_wrong(url: str, cleaner: Cleaner) -> None:
    """The layer's copy of one table cannot be created (a view stands where it goes). SQLite:
    the push is one transaction, nothing changed, the marks are kept (the reset goes back to
    the migrations' baseline). MariaDB (each DDL commits): the push stops half-way with its
    layer open, and popping that layer restores every table."""
    before = state(url)
    seed(url, "layer")
    with connect(url) as c:
        table_id = c.execute(
            sa.text("SELECT id FROM cleandb_tables WHERE name = :n"), {"n": COUNTED}
        ).scalar_one()
        c.execute(sa.text(f"CREATE VIEW cleandb_b{table_id}_1 AS SELECT 1 AS x"))
    with pytest.raises(ResetError, match="starting a scoped baseline in"):
        push(cleaner)
    execute(url, f"DROP VIEW cleandb_b{table_id}_1")
    scribble(url)
    if url.startswith("sqlite"):
        assert depth(cleaner) == 0
        cleaner.reset()
    else:
        assert depth(cleaner) == 1
        assert pop(cleaner) == 0
    assert state(url) == before
    with connect(url) as c:  # nothing of the layer is left behind
        left = [
            n for n in sa.inspect(c).get_table_names() if n.startswith("cleandb_b") and "_" in n[9:]
        ]
        assert c.execute(sa.text("SELECT COUNT(*) FROM cleandb_layers")).scalar_one() == 0
    assert left == []


@CLIENTSIDE
def test_layers_of_a_worker_thread_and_the_app_engine(url: str, cleaner: Cleaner) -> None:
    """Writes through any connection count: the app's engine, a thread's own connection."""
    before = state(url)

    def write() -> None:
        insert(url, "user", name="from a thread")

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    insert(url, COUNTED, v="from the app")
    push(cleaner)
    seeded = state(url)
    scribble(url)
    cleaner.reset()
    assert state(url) == seeded
    pop(cleaner)
    assert state(url) == before


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_layer_statements_match_their_golden_file(db_url: str) -> None:
    """Every statement a push and a pop send on the MySQL family, whole (MySQL 8 cannot run
    here: none of them differs between the flavours but the reset procedure, whose text is
    in mariadb.sql / mysql8.sql). A table whose name needs quoting, seeded at baseline, and
    one empty at baseline; the procedure's text is left out (its own golden files)."""
    with connect(db_url) as c:
        for name in ("we`ird", "plain"):
            c.execute(
                sa.text(f"CREATE TABLE {q(c, name)} (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)")
            )
        c.execute(sa.text("INSERT INTO `we``ird` (v) VALUES ('seed')"))
    upgrade(db_url, "cleandb@head")
    sent: list[tuple[str, str]] = []
    with Cleaner(db_url) as cleaner:

        @sa.event.listens_for(cleaner._connection, "before_cursor_execute")
        def record(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            if sql.startswith("CREATE PROCEDURE"):
                sql = "CREATE PROCEDURE cleandb_truncate() ... (see mariadb.sql)"
            sent.append((label, sql))

        for step in ("push", "pop"):
            insert(db_url, "we`ird", v=f"{step} row")
            insert(db_url, "plain", v=f"{step} row")
            label = step
            (cleaner.push_baseline if step == "push" else cleaner.pop_baseline)()
    assert_matches_golden("layers.sql", render(sent))


@CLIENTSIDE
def test_a_layer_saves_every_registry_column_a_baseline_is_made_of(migrated: str) -> None:
    """A new column of cleandb_tables that describes a table's baseline (its reset statements,
    counter, mode...) must be saved by a layer too, or a pop would leave the layer's value."""
    with connect(migrated) as c:
        inspector = sa.inspect(c)
        registry = {col["name"] for col in inspector.get_columns("cleandb_tables")}
        layers = {col["name"] for col in inspector.get_columns("cleandb_layers")}
    not_baseline = {"id", "name", "check_sql", "check_names", "app_triggers"}  # (see _relations)
    saved = backend_for(sa.make_url(migrated).get_backend_name()).layer_columns  # type: ignore[attr-defined]
    assert registry - not_baseline == set(saved)
    assert layers == {"depth", "tid", *saved}
