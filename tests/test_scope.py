"""Scoped baselines through Cleaner (push_baseline, pop_baseline, scope()), on real
PostgreSQL, MariaDB and SQLite. The pytest fixture cleandb_scope is tested in
test_scope_pytester.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

import alembic_cleandb
from alembic_cleandb import Cleaner, ConfigurationError, ResetError
from conftest import Databases, alembic_config, upgrade
from dbutil import connect, execute, insert, q, rows

SEED = [
    (1, "new", "New"),
    (2, "paid", "Paid"),
    (3, "shipped", "Shipped"),
    (4, "cancelled", "Cancelled"),
]


def names(url: str) -> list[str]:
    return [r[1] for r in rows(url, "user")]


def test_push_makes_the_writes_the_baseline_and_pop_brings_the_previous_one_back(
    migrated: str,
) -> None:
    with Cleaner(migrated) as cleaner:
        assert cleaner.baseline_depth() == 0
        assert insert(migrated, "user", name="seed") == 1
        insert(migrated, "lookup_status", code="extra", label="Extra")
        assert cleaner.push_baseline() == 1
        assert cleaner.baseline_depth() == 1
        # A "test" changes the scoped rows and adds its own: the reset restores the scope's.
        with connect(migrated) as c:
            c.execute(sa.text(f"UPDATE {q(c, 'user')} SET name = 'changed'"))
        assert insert(migrated, "user", name="test's") == 2
        assert cleaner.reset() == 1
        assert names(migrated) == ["seed"]
        assert insert(migrated, "user", name="next test's") == 2  # counters from the scope's
        cleaner.reset()
        assert cleaner.pop_baseline() == 0
        assert rows(migrated, "user") == []
        assert rows(migrated, "lookup_status") == SEED
        # Counters are back too: the first user is 1 again, the next status 5.
        assert insert(migrated, "user", name="after") == 1
        assert insert(migrated, "lookup_status", code="later", label="Later") == 5
        cleaner.reset()
        assert rows(migrated, "lookup_status") == SEED


def test_scopes_nest_three_deep(migrated: str) -> None:
    with Cleaner(migrated) as cleaner:
        scopes = [cleaner.scope() for _ in range(3)]
        for level, scope in enumerate(scopes, 1):
            with scope:
                insert(migrated, "user", name=f"level {level}")
                insert(migrated, "category", name=f"level {level}")
            assert scope.depth == level
        assert names(migrated) == ["level 1", "level 2", "level 3"]
        execute(migrated, "DELETE FROM category")
        insert(migrated, "user", name="test")
        cleaner.reset()
        assert names(migrated) == ["level 1", "level 2", "level 3"]
        assert [r[2] for r in rows(migrated, "category")] == ["level 1", "level 2", "level 3"]
        for level in (3, 2, 1):
            insert(migrated, "user", name="test")  # written in the scope: reset by its end
            scopes[level - 1].end()
            assert cleaner.baseline_depth() == level - 1
            assert names(migrated) == [f"level {n}" for n in range(1, level)]
            assert insert(migrated, "user", name="next") == level
            cleaner.reset()
        assert rows(migrated, "user") == [] and rows(migrated, "category") == []


def test_a_scope_whose_block_fails_half_way_leaves_nothing_behind(migrated: str) -> None:
    with Cleaner(migrated) as cleaner:
        scope = cleaner.scope()
        with pytest.raises(RuntimeError, match="half-way"), scope:
            insert(migrated, "user", name="written before the failure")
            raise RuntimeError("seed failed half-way")
        assert scope.depth is None and cleaner.baseline_depth() == 0
        assert rows(migrated, "user") == []
        scope.end()  # never started: nothing to end
        assert insert(migrated, "user", name="first") == 1


def test_writes_before_the_block_are_not_part_of_the_scope(migrated: str) -> None:
    with Cleaner(migrated) as cleaner:
        insert(migrated, "category", name="before")
        scope = cleaner.scope()
        with scope:
            insert(migrated, "user", name="seed")
        assert rows(migrated, "category") == []
        insert(migrated, "category", name="test")
        cleaner.reset()
        assert rows(migrated, "category") == [] and names(migrated) == ["seed"]
        scope.end()
        assert rows(migrated, "user") == []


def test_ending_a_scope_that_is_not_open_says_so(migrated: str) -> None:
    with Cleaner(migrated) as cleaner:
        with pytest.raises(ConfigurationError, match="no scoped baseline is open"):
            cleaner.pop_baseline()
        outer, inner = cleaner.scope(), cleaner.scope()
        with outer:
            insert(migrated, "user", name="outer")
        with inner:
            insert(migrated, "user", name="inner")
        with pytest.raises(ConfigurationError, match="innermost first"):
            outer.end()
        assert names(migrated) == ["inner", "outer"] or names(migrated) == ["outer", "inner"]
        with pytest.raises(ConfigurationError, match="started already"), inner:
            pass
        inner.end()
        outer.end()
        assert rows(migrated, "user") == []


def test_set_baseline_and_migrations_refuse_while_scopes_are_open(
    migrated: str, backend: str
) -> None:
    with Cleaner(migrated) as cleaner:
        insert(migrated, "user", name="seed")
        cleaner.push_baseline()
        insert(migrated, "user", name="test")
        with pytest.raises(ConfigurationError, match="scoped baseline.*are open.*pop_baseline"):
            alembic_cleandb.set_baseline(migrated)
        # A migration step's sync refuses too; on PostgreSQL the step is rolled back with it
        # (MySQL/MariaDB commit a step's DDL as it goes: the run stops before its sync, and
        # the database stays marked "sync pending" until set_baseline() below).
        with pytest.raises(Exception, match="scoped baseline"):
            command.downgrade(alembic_config(migrated), "0001")
        if backend == "postgresql":
            assert rows(migrated, "lookup_status") == SEED
        assert cleaner.baseline_depth() == 1
        assert cleaner.pop_baseline() == 0
        assert rows(migrated, "user") == []
        alembic_cleandb.set_baseline(migrated)


# -- PostgreSQL only: partitions, sequences tied to no table, atomicity ----------------------


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[str]:
    dbs = Databases("postgresql", tmp_path)
    url = dbs.create()
    upgrade(url)
    yield url
    dbs.drop_all()


def test_postgresql_partitions_and_free_sequences_in_a_scope(pg: str) -> None:
    execute(pg, "CREATE SEQUENCE order_number START 100")
    alembic_cleandb.set_baseline(pg)  # (takes the new sequence's position as its baseline)

    def next_number() -> int:
        with connect(pg) as c:
            return int(c.execute(sa.text("SELECT nextval('order_number')")).scalar_one())

    with Cleaner(pg) as cleaner:
        scope = cleaner.scope()
        with scope:
            execute(pg, "INSERT INTO measurement (taken, value) VALUES ('2025-05-01', 1)")
            assert next_number() == 100
        execute(pg, "INSERT INTO measurement (taken, value) VALUES ('2026-05-01', 2)")
        execute(pg, "DELETE FROM measurement_2025")
        assert next_number() == 101
        cleaner.reset()
        assert [r[2] for r in rows(pg, "measurement")] == [1]
        assert next_number() == 101  # the scope's position
        cleaner.reset()
        scope.end()
        assert rows(pg, "measurement") == []
        assert next_number() == 100  # the position before the scope
        with connect(pg) as c:
            first = c.execute(
                sa.text("INSERT INTO measurement (taken) VALUES ('2025-01-02') RETURNING id")
            ).scalar()
        assert first == 1


def test_postgresql_an_end_that_fails_changes_nothing_and_can_be_retried(pg: str) -> None:
    with Cleaner(pg, lock_timeout=0.3) as cleaner:
        insert(pg, "user", name="seed")
        cleaner.push_baseline()
        engine = sa.create_engine(pg)
        try:
            with engine.connect() as other:  # a test's leftover transaction holds a lock
                other.execute(sa.text('LOCK TABLE "user" IN ACCESS EXCLUSIVE MODE'))
                with pytest.raises(ResetError, match="ending a scoped baseline in .* failed"):
                    cleaner.pop_baseline()
                other.rollback()
        finally:
            engine.dispose()
        assert cleaner.baseline_depth() == 1
        assert names(pg) == ["seed"]
        insert(pg, "user", name="test")
        cleaner.reset()
        assert names(pg) == ["seed"]  # still the scope's baseline
        assert cleaner.pop_baseline() == 0
        assert rows(pg, "user") == []
