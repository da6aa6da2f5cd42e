"""Property: whatever a test does - INSERT, UPDATE, DELETE, TRUNCATE over foreign-key-linked
tables with seed rows, from one to three connections, each committed or rolled back - one
reset brings back exactly the baseline: every row, and every sequence / AUTO_INCREMENT
position.

One migrated database per backend serves every example (the reset itself is what is tested:
if one reset failed, the next example would start off the baseline and fail too).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alembic_cleandb import Cleaner, ResetError
from conftest import BACKENDS, Databases, upgrade
from reliability_helpers import counters, engine, q, user_tables

pytestmark = pytest.mark.slow  # many generated examples per backend

LONG = "a_table_whose_name_is_exactly_sixty_four_characters_long_abcdefg"
TABLES = [
    "user", "Order", "user-profile", "lookup_status", "shipment", "category", "order line",
    "event_log", LONG, "audit_entry",
]  # fmt: skip
POSTGRESQL_ONLY = ["measurement"]  # (billing.invoice is outside the tracked schema: the dump
# still shows it untouched)


@dataclass
class World:
    """One migrated database, three open connections to play with, and the reset."""

    backend: str
    url: str
    connections: list[sa.Connection]
    probe: sa.Connection
    cleaner: Cleaner
    tables: list[tuple[str | None, str]]
    baseline: dict[str, Any]

    def ref(self, c: sa.Connection, table: str) -> str:
        if "." in table:
            schema, name = table.split(".")
            return f"{q(c, schema)}.{q(c, name)}"
        return q(c, table)

    def dump(self) -> dict[str, Any]:
        c = self.probe
        out: dict[str, Any] = {}
        for schema, name in self.tables:
            ref = q(c, name) if schema is None else f"{q(c, schema)}.{q(c, name)}"
            rows = c.exec_driver_sql(f"SELECT * FROM {ref}").fetchall()
            out[f"{schema or ''}.{name}"] = sorted(tuple(map(repr, r)) for r in rows)
        out["<counters>"] = counters(c)
        out["<marks>"] = c.exec_driver_sql(
            "SELECT COUNT(*) FROM "
            + ("cleandb.dirty" if self.backend == "postgresql" else "cleandb_dirty")
        ).scalar()
        c.rollback()
        return out


def _session(c: sa.Connection) -> sa.Connection:
    """Never wait for a lock another connection of the same example holds: fail at once."""
    name = c.dialect.name
    if name == "postgresql":
        c.exec_driver_sql("SET lock_timeout = '20ms'")
    elif name in ("mysql", "mariadb"):
        c.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 0, lock_wait_timeout = 0")
    c.commit()
    return c


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    backend = str(request.param)
    databases = Databases(backend, tmp_path_factory.mktemp(f"properties-{backend}"))
    url = databases.create()
    upgrade(url)
    kw: dict[str, Any] = {"connect_args": {"timeout": 0}} if backend == "sqlite" else {}
    e = engine(url, **kw)
    connections = [_session(e.connect()) for _ in range(3)]
    probe = e.connect()
    tables = user_tables(probe)
    probe.rollback()
    cleaner = Cleaner(url, lock_timeout=5)
    cleaner.reset()
    w = World(backend, url, connections, probe, cleaner, tables, {})
    w.baseline = w.dump()
    assert w.baseline["<marks>"] == 0
    try:
        yield w
    finally:
        cleaner.close()
        for c in [*connections, probe]:
            c.close()
        e.dispose()
        databases.drop_all()


# -- statements --------------------------------------------------------------------------------

Statement = tuple[str, dict[str, Any]]


def insert(w: World, c: sa.Connection, table: str, v: list[int]) -> Statement:
    """An INSERT into ``table``; ``v`` picks the values (keys in 1..5: some exist, some not)."""
    t = w.ref(c, table)
    explicit = v[3] == 5  # now and then an explicit key, which may collide or jump ahead
    key = {"id": 10 + v[0]} if explicit else {}
    cols = ", ".join(q(c, k) for k in key)
    marks = ", ".join(f":{k}" for k in key)
    sep = ", " if key else ""

    def build(names: list[str], values: dict[str, Any]) -> Statement:
        all_cols = cols + sep + ", ".join(q(c, n) for n in names)
        all_marks = marks + sep + ", ".join(f":{n}" for n in names)
        return f"INSERT INTO {t} ({all_cols}) VALUES ({all_marks})", {**key, **values}

    if table == "user":
        return build(["name"], {"name": f"u{v[1]}"})
    if table == "Order":
        return build(["user_id", "total"], {"user_id": v[1] or None, "total": v[2]})
    if table == "user-profile":
        return build(["user_id", "bio"], {"user_id": v[1] or None, "bio": "b" * v[2]})
    if table == "lookup_status":  # code "new" is seeded: taken over once row 1 let go of it
        code = "new" if v[1] == 5 else f"c{v[1]}"
        return build(["code", "label"], {"code": code, "label": f"L{v[2]}"})
    if table == "shipment":
        return build(
            ["order_id", "status_id"], {"order_id": v[1] or None, "status_id": v[2] or None}
        )
    if table == "category":
        return build(["parent_id", "name"], {"parent_id": v[1] or None, "name": f"n{v[2]}"})
    if table == "order line":
        names = ["order_id", "line_no", "qty"]
        return (
            f"INSERT INTO {t} ({', '.join(q(c, n) for n in names)}) VALUES (:o, :l, :q)",
            {"o": v[0] or 1, "l": v[1], "q": v[2]},
        )
    if table == "event_log":
        return f"INSERT INTO {t} (message) VALUES (:m)", {"m": f"e{v[1]}"}
    if table == LONG:
        return build(["note"], {"note": f"n{v[1]}"})
    if table == "audit_entry":
        return build(["what"], {"what": f"w{v[1]}"})
    if table == "measurement":
        return (
            f"INSERT INTO {t} (taken, value) VALUES (CAST(:d AS date), :v)",
            {"d": f"{2025 + v[1] % 2}-0{1 + v[2]}-01", "v": v[0]},
        )
    raise AssertionError(table)


# (column to change, a value) per table; None: the table has nothing but its key to change.
CHANGES: dict[str, tuple[str, str]] = {
    "user": ("name", "'changed'"), "Order": ("total", "total + 1"), "user-profile": ("bio", "'x'"),
    "lookup_status": ("label", "'changed'"), "shipment": ("status_id", "1"),
    "category": ("parent_id", "NULL"), "order line": ("qty", "qty + 1"),
    "event_log": ("message", "'changed'"), LONG: ("note", "'changed'"),
    "audit_entry": ("what", "'changed'"), "measurement": ("value", "-1"),
}  # fmt: skip
KEYS = {"order line": "line_no", "event_log": "message"}


def where(w: World, c: sa.Connection, table: str, v: list[int]) -> str:
    if v[2] == 0:
        return ""  # every row
    key = KEYS.get(table, "id")
    if table == "event_log":
        return f" WHERE message = 'e{v[0]}'"
    return f" WHERE {q(c, key)} = {v[0]}"


def update(w: World, c: sa.Connection, table: str, v: list[int]) -> Statement:
    column, value = CHANGES[table]
    if v[1] == 5 and table in ("user", "lookup_status", "category"):
        column, value = "id", "id + 100"  # move a key (referenced rows make it fail)
    elif v[1] == 4 and table == "lookup_status":
        column, value = "code", "code || 'x'"  # a seeded unique value let go
    return f"UPDATE {w.ref(c, table)} SET {q(c, column)} = {value}{where(w, c, table, v)}", {}


def delete(w: World, c: sa.Connection, table: str, v: list[int]) -> Statement:
    return f"DELETE FROM {w.ref(c, table)}{where(w, c, table, v)}", {}


def truncate(w: World, c: sa.Connection, table: str, v: list[int]) -> Statement:
    if w.backend == "sqlite":
        return f"DELETE FROM {w.ref(c, table)}", {}
    if w.backend == "postgresql":
        restart = " RESTART IDENTITY" if v[0] % 2 else ""
        cascade = " CASCADE" if v[1] % 2 else ""
        return f"TRUNCATE {w.ref(c, table)}{restart}{cascade}", {}
    return f"TRUNCATE TABLE {w.ref(c, table)}", {}  # implicit commit; refused if referenced


KINDS = {"insert": insert, "update": update, "delete": delete, "truncate": truncate}
operation = st.tuples(
    st.integers(0, 2),  # connection
    st.sampled_from(["insert"] * 4 + ["update"] * 2 + ["delete"] * 2 + ["truncate"]),
    st.integers(0, len(TABLES) + len(POSTGRESQL_ONLY) - 1),  # table
    st.lists(st.integers(0, 5), min_size=4, max_size=4),  # values
)
scenario = st.tuples(
    st.integers(1, 3),  # connections used
    st.lists(operation, min_size=1, max_size=14),
    st.lists(st.booleans(), min_size=3, max_size=3),  # commit (True) or roll back, each
)


def play(w: World, used: int, operations: list[Any], commits: list[bool]) -> None:
    tables = TABLES + (POSTGRESQL_ONLY if w.backend == "postgresql" else [])
    for conn_index, kind, table_index, values in operations:
        c = w.connections[conn_index % used]
        table = tables[table_index % len(tables)]
        sql, params = KINDS[kind](w, c, table, values)
        try:
            if w.backend == "postgresql":
                with c.begin_nested():  # a failed statement only undoes itself
                    c.execute(sa.text(sql), params)
            else:
                c.execute(sa.text(sql), params)
        except sa.exc.DBAPIError:
            # A constraint violation, a lock another connection of this example holds, ...:
            # the statement is undone (PostgreSQL: back to its savepoint), the rest goes on.
            pass
    for c, commit in zip(w.connections, commits):
        if c.in_transaction():
            try:
                c.commit() if commit else c.rollback()
            except sa.exc.DBAPIError:
                c.rollback()


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(scenario)
def test_one_reset_restores_the_baseline_whatever_the_test_did(
    world: World, case: tuple[int, list[Any], list[bool]]
) -> None:
    used, operations, commits = case
    play(world, used, operations, commits)
    world.cleaner.reset()
    assert world.dump() == world.baseline


# -- the cases behind the property, spelled out -------------------------------------------------


def test_a_unique_value_taken_over_by_a_new_row_is_given_back(world: World) -> None:
    c = world.connections[0]
    c.execute(sa.text("UPDATE lookup_status SET code = 'old' WHERE id = 1"))
    c.execute(sa.text("INSERT INTO lookup_status (id, code, label) VALUES (10, 'new', 'N')"))
    c.execute(sa.text("UPDATE lookup_status SET id = 101 WHERE id = 2"))  # a key moved away
    c.execute(sa.text("INSERT INTO lookup_status (id, code, label) VALUES (2, 'two', 'P')"))
    c.commit()
    world.cleaner.reset()
    assert world.dump() == world.baseline


def test_unique_values_swapped_between_seed_rows(world: World) -> None:
    """MySQL and SQLite rewrite a dirty seeded table; PostgreSQL restores rows in place and
    cannot undo a swap: it says so, changes nothing, and keeps the marks."""
    c = world.connections[0]
    for sql in (
        "UPDATE lookup_status SET code = 'tmp' WHERE id = 1",
        "UPDATE lookup_status SET code = 'new' WHERE id = 2",
        "UPDATE lookup_status SET code = 'paid' WHERE id = 1",
    ):
        c.execute(sa.text(sql))
    c.commit()
    if world.backend != "postgresql":
        world.cleaner.reset()
        assert world.dump() == world.baseline
        return
    with pytest.raises(ResetError, match="unique values swapped between baseline rows"):
        world.cleaner.reset()
    assert world.dump()["<marks>"] == 1
    c.execute(sa.text("UPDATE lookup_status SET code = 'tmp' WHERE id = 1"))  # by hand
    c.execute(sa.text("UPDATE lookup_status SET code = 'paid' WHERE id = 2"))
    c.execute(sa.text("UPDATE lookup_status SET code = 'new' WHERE id = 1"))
    c.commit()
    world.cleaner.reset()
    assert world.dump() == world.baseline
