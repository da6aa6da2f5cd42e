"""The tracking never makes writers wait for each other, and a rollback never erases a mark
that a committed writer needs.

Every connection here waits at most a moment for a lock (PostgreSQL ``lock_timeout``,
InnoDB ``innodb_lock_wait_timeout``): a wait caused by the tracking fails the test at once
instead of slowing it down. Each writer touches its own rows, so the only thing the writers
share is the tracking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from alembic_cleandb import clean
from alembic_cleandb.backends import mysql
from reliability_helpers import PATIENCE, connection, counters, full_dump, marks, q

pytestmark = pytest.mark.slow  # exhaustive, threads, both isolation levels, every backend

SERVERS = pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
ISOLATION = ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]


def _fail_fast(c: sa.Connection, isolation: str) -> None:
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SET lock_timeout = '300ms'")
    else:
        c.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1, lock_wait_timeout = 1")
    c.commit()
    c.execution_options(isolation_level=isolation.replace(" ", "_"))


Step = Callable[[sa.Connection, int, dict[str, int]], None]


def _run_writers(
    url: str, isolation: str, steps: list[Step], n: int, commit: Callable[[int], bool]
) -> list[BaseException]:
    """``n`` threads, one connection each: every step runs in all of them before the next one
    starts (a barrier in between), inside one open transaction per thread; then each thread
    commits or rolls back. Returns the errors the threads met."""
    barrier = threading.Barrier(n, timeout=PATIENCE)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            with connection(url) as c:
                _fail_fast(c, isolation)
                state: dict[str, int] = {}
                try:
                    for step in steps:
                        step(c, i, state)
                        barrier.wait()
                finally:
                    if commit(i):
                        c.commit()
                    else:
                        c.rollback()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return errors


def _insert(c: sa.Connection, i: int, state: dict[str, int] | None = None) -> None:
    row = c.execute(
        sa.text(f"INSERT INTO {q(c, 'user')} (name) VALUES (:n) RETURNING id"),
        {"n": f"writer {i}"},
    ).scalar_one()
    if state is not None:
        state["id"] = int(row)


def _update_own(c: sa.Connection, i: int, state: dict[str, int]) -> None:
    c.execute(sa.text(f"UPDATE {q(c, 'user')} SET name = 'x' WHERE id = :id"), state)


def _update_seed(c: sa.Connection, i: int, state: dict[str, int] | None = None) -> None:
    c.execute(
        sa.text("UPDATE lookup_status SET label = :l WHERE id = :id"), {"l": f"w{i}", "id": i + 1}
    )  # seeded rows 1..3: one per writer


def _insert_unkeyed(c: sa.Connection, i: int, state: dict[str, int] | None = None) -> None:
    c.execute(sa.text("INSERT INTO event_log (message) VALUES (:m)"), {"m": f"writer {i}"})


@SERVERS
@pytest.mark.parametrize("isolation", ISOLATION)
def test_writers_of_the_same_tables_never_wait_for_the_tracking(
    migrated: str, isolation: str
) -> None:
    """Three transactions write the same tables at the same time: all three get their marks in
    while the others' marks are still uncommitted, and none waits (nor, under SERIALIZABLE,
    fails to commit because of the marks: only inserts here, which conflict with nothing)."""
    baseline = full_dump(migrated)
    steps: list[Step] = [_insert, _insert_unkeyed, _insert]
    if isolation != "SERIALIZABLE":  # (PostgreSQL's SSI locks index pages, not rows)
        steps += [_update_own, _update_seed]
    errors = _run_writers(migrated, isolation, steps, 3, commit=lambda i: True)
    assert errors == []
    with connection(migrated) as c:
        assert c.execute(sa.text(f"SELECT COUNT(*) FROM {q(c, 'user')}")).scalar() == 6
    assert {"user", "event_log"} <= marks(migrated)
    clean(migrated)
    assert full_dump(migrated) == baseline


@SERVERS
@pytest.mark.parametrize("isolation", ISOLATION[:2])
@pytest.mark.parametrize("survivor", [0, 1, 2])
def test_a_rollback_never_removes_the_mark_of_a_committed_writer(
    migrated: str, isolation: str, survivor: int
) -> None:
    """Three concurrent writers of the same table, each with its own fresh mark; only one
    commits. Its rows are reset, and the sequence positions the others took are restored."""
    baseline = full_dump(migrated)
    errors = _run_writers(
        migrated, isolation, [_insert, _update_seed], 3, commit=lambda i: i == survivor
    )
    assert errors == []
    assert {"user", "lookup_status"} <= marks(migrated)
    clean(migrated)
    assert full_dump(migrated) == baseline


@pytest.mark.parametrize("order", ["commit-then-rollback", "rollback-then-commit"])
def test_a_rollback_on_top_of_a_committed_mark_keeps_it(migrated: str, order: str) -> None:
    """Sequentially (also on SQLite, whose writers cannot overlap): a writer that sees a
    committed mark and rolls back leaves that mark alone; one that rolls back first leaves
    nothing but counters for the reset to put back."""
    baseline = full_dump(migrated)
    with connection(migrated) as a, connection(migrated) as b:
        writers = [(a, True), (b, False)]
        if order == "rollback-then-commit":
            writers.reverse()
        for i, (c, keep) in enumerate(writers):
            _insert(c, i)
            if keep:
                c.commit()
            else:
                c.rollback()
            assert marks(migrated) == ({"user"} if keep or i else set())
    clean(migrated)
    assert full_dump(migrated) == baseline


@SERVERS
def test_the_same_connection_rolling_back_after_committing_keeps_its_mark(migrated: str) -> None:
    """MariaDB keeps one mark per connection: a later transaction of the same connection that
    rolls back must not take the committed one with it."""
    baseline = full_dump(migrated)
    with connection(migrated) as c:
        _insert(c, 0)
        c.commit()
        _insert(c, 1)
        _update_seed(c, 0)
        c.rollback()
    assert marks(migrated) == {"user"}
    assert clean(migrated) == 1
    assert full_dump(migrated) == baseline


@SERVERS
def test_rolled_back_inserts_leave_no_row_but_their_counters_are_restored(migrated: str) -> None:
    """Sequence/AUTO_INCREMENT values are not transactional: a rollback keeps them taken."""
    with connection(migrated) as c:
        before = counters(c)
        c.rollback()
        _insert(c, 0)
        _insert(c, 1)
        c.rollback()
        moved = counters(c)
        c.rollback()
    assert moved != before  # the server really kept the values taken
    assert marks(migrated) == set()
    assert clean(migrated) == 0  # no table was written ...
    with connection(migrated) as c:
        assert counters(c) == before  # ... but the counters are back
        _insert(c, 0)
        assert c.execute(sa.text(f"SELECT MAX(id) FROM {q(c, 'user')}")).scalar() == 1
        c.rollback()


@SERVERS
def test_an_open_transaction_on_another_table_does_not_hold_up_the_reset(migrated: str) -> None:
    """The reset reads the marks without locks: a transaction that is still writing a table
    the reset does not touch (no AUTO_INCREMENT there) never makes it wait."""
    with connection(migrated) as writer:
        _insert(writer, 0)
        writer.commit()
        _insert_unkeyed(writer, 1)  # open, with an uncommitted mark
        with connection(migrated) as c:
            _fail_fast(c, "REPEATABLE READ")
        assert clean(migrated, lock_timeout=1) == 1
        writer.commit()
    assert marks(migrated) == {"event_log"}  # the late commit's mark survived the reset
    assert clean(migrated) == 1


def test_mysql_triggers_and_reset_never_read_the_marks_with_locks() -> None:
    """Inside routines InnoDB reads with shared locks (``IF EXISTS (SELECT ...)`` included),
    so the triggers never read cleandb_dirty, and the reset reads with ``SELECT ... INTO``."""
    backend = mysql.MySQLBackend()
    for kind, event in (("i", "INSERT"), ("u", "UPDATE"), ("d", "DELETE")):
        ddl = backend.trigger_ddl("`t`", 7, kind, event)
        assert "SELECT" not in ddl.upper()
        assert "INSERT INTO cleandb_dirty (tid, kind, conn)" in ddl
        assert "CONNECTION_ID()" in ddl
        assert ("cleandb_tickets" in ddl) == (kind in "iu")
        assert ddl.split()[3] == ("AFTER" if kind == "d" else "BEFORE")
    body = mysql._procedure([(3, "`lookup`")]).upper()
    assert "IF EXISTS (SELECT" not in body and "IF NOT EXISTS (SELECT" not in body
    assert "PRIMARY KEY (TID, KIND, CONN)" in " ".join(backend.bookkeeping_ddl).upper()
