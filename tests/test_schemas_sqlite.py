"""Real-world SQLite schemas (issue 12): features a production migration history contains,
each reset exactly or refused with a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

import alembic_cleandb
import alembic_cleandb.operations  # noqa: F401  (registers op.install_clean_tracking)
from alembic_cleandb import ConfigurationError, ResetError
from dbutil import connect, dump, execute
from test_schemas_postgresql import Migrations

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def track(url: str, *ddl: str, exclude: Sequence[str] = ()) -> None:
    """Run the schema's DDL and seed statements, then install tracking (their baseline)."""
    with connect(url) as c:
        for statement in ddl:
            c.exec_driver_sql(statement)
    with connect(url) as c:
        Operations(MigrationContext.configure(c)).install_clean_tracking(exclude=list(exclude))


def marked(url: str) -> set[str]:
    with connect(url) as c:
        return {
            str(n)
            for (n,) in c.execute(
                sa.text(
                    "SELECT DISTINCT t.name FROM cleandb_dirty d "
                    "JOIN cleandb_tables t ON t.id = d.tid"
                )
            )
        }


# -- item 14: a row of an untracked table references a row a test wrote -----------------------

UNTRACKED = (
    'CREATE TABLE "Order" (id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT)',
    "CREATE TABLE empty_parent (id INTEGER PRIMARY KEY AUTOINCREMENT)",
    'CREATE TABLE audit (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES "Order", '
    "parent_id INTEGER REFERENCES empty_parent (id))",
    "INSERT INTO \"Order\" (id, label) VALUES (1, 'seed')",
    "INSERT INTO audit (order_id) VALUES (1)",
)


def test_a_reference_from_an_untracked_table_to_a_written_row_refuses(db_url: str) -> None:
    track(db_url, *UNTRACKED, exclude=["audit"])
    baseline = dump(db_url)
    execute(db_url, "UPDATE \"Order\" SET label = 'changed' WHERE id = 1")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (1)")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url, ["Order"]) == {"Order": baseline["Order"]}
    execute(db_url, "DELETE FROM audit WHERE id > 1")
    execute(db_url, "INSERT INTO \"Order\" (id, label) VALUES (2, 'new')")
    execute(db_url, "INSERT INTO audit (order_id) VALUES (2)")
    with pytest.raises(
        ResetError,
        match=r"untracked table 'audit' references a row a test wrote to 'Order'"
        r".*dangling reference.*marks are kept",
    ):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"Order"}
    assert dump(db_url, ["Order"])["Order"] == [(1, "seed"), (2, "new")]
    execute(db_url, "DELETE FROM audit WHERE order_id = 2")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline
    execute(db_url, "INSERT INTO empty_parent DEFAULT VALUES")
    execute(db_url, "INSERT INTO audit (parent_id) VALUES (1)")
    with pytest.raises(ResetError, match="'audit' references a row a test wrote to 'empty_parent'"):
        alembic_cleandb.clean(db_url)
    assert marked(db_url) == {"empty_parent"}
    execute(db_url, "DELETE FROM audit WHERE parent_id = 1")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == baseline


# -- item 17: the reset's own writes fire none of the application's triggers ------------------


def test_the_reset_fires_no_application_trigger(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)",
        "INSERT INTO audit (what) VALUES ('seeded')",
        "CREATE TRIGGER append_only BEFORE DELETE ON audit "
        "BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
        "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, created_at TEXT)",
        "INSERT INTO item VALUES (1, 'a', '2001-01-01'), (2, 'b', '2001-01-02')",
        "CREATE TRIGGER stamp AFTER INSERT ON item "
        "BEGIN UPDATE item SET created_at = '2099-09-09' WHERE id = NEW.id; END",
    )
    baseline = dump(db_url)
    with connect(db_url) as c:
        triggers = c.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        ).fetchall()
    for _ in range(2):
        execute(
            db_url,
            "INSERT INTO audit (what) VALUES ('by the test')",
            "DELETE FROM item WHERE id = 1",
            "UPDATE item SET name = 'changed' WHERE id = 2",
        )
        assert alembic_cleandb.clean(db_url) == 2
        assert dump(db_url) == baseline
        assert marked(db_url) == set()
    with connect(db_url) as c:  # the application's triggers are back, exactly
        assert (
            c.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            ).fetchall()
            == triggers
        )
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        execute(db_url, "DELETE FROM audit")


def test_triggers_that_write_each_other_settle_in_one_pass(db_url: str) -> None:
    track(
        db_url,
        "CREATE TABLE ping (v INTEGER)",
        "CREATE TABLE pong (v INTEGER)",
        "INSERT INTO ping (v) VALUES (1)",
        "INSERT INTO pong (v) VALUES (1)",
        "CREATE TRIGGER ping_ins AFTER INSERT ON ping BEGIN UPDATE pong SET v = v + 1; END",
        "CREATE TRIGGER pong_del AFTER DELETE ON pong BEGIN UPDATE ping SET v = v + 1; END",
    )
    execute(db_url, "UPDATE ping SET v = 5")
    assert alembic_cleandb.clean(db_url) == 1
    assert dump(db_url) == {"ping": [(1,)], "pong": [(1,)]}


# -- item 16: FTS5 (own and external content), FTS3/FTS4, R*Tree ------------------------------
#
# Everything that makes a virtual table's module write (an FTS write, a search, a reset's
# effect seen through the index) runs in a subprocess: a regression that put a trigger on a
# shadow table would crash SQLite 3.40 with a segmentation fault, which must fail the test,
# not kill the test runner.

FTS_SCRIPT = r"""
import json, sqlite3, sys
path, statements, queries = json.loads(sys.argv[1])
c = sqlite3.connect(path)
for sql in statements:
    c.execute(sql)
    c.commit()
print(json.dumps([c.execute(sql).fetchall() for sql in queries]))
"""


def in_subprocess(
    url: str, statements: Sequence[str] = (), queries: Sequence[str] = ()
) -> list[Any]:
    """Run ``statements`` (each committed) then ``queries`` on the database in a fresh Python
    process; return the queries' rows (as JSON gives them back: lists)."""
    path = sa.make_url(url).database
    result = subprocess.run(
        [sys.executable, "-c", FTS_SCRIPT, json.dumps([path, list(statements), list(queries)])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"SQLite work in a subprocess ended with {result.returncode} "
        f"(-11: a segmentation fault): {result.stderr[-2000:]}"
    )
    return list(json.loads(result.stdout))


#: 1 to 600 (generate_series is not in every SQLite build)
SERIES = (
    "WITH RECURSIVE series (value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM series "
    "WHERE value < 600)"
)
#: Enough FTS5 writes to flush and merge segments: with a row trigger on ``*_data`` this
#: crashes SQLite 3.40 (measured).
HEAVY_FTS5 = (
    f"INSERT INTO docs (title, body) {SERIES} SELECT 'heavy ' || value, "
    "replace(hex(zeroblob(200)), '00', 'heavy word ') FROM series",
    "DELETE FROM docs WHERE rowid % 3 = 0 AND title LIKE 'heavy%'",
    "UPDATE docs SET body = 'changed heavy' WHERE rowid % 5 = 0 AND title LIKE 'heavy%'",
    "INSERT INTO docs (docs) VALUES ('optimize')",
)


def triggers_on(url: str, tables: Sequence[str]) -> list[str]:
    with connect(url) as c:
        return [
            str(n)
            for (n,) in c.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN "
                f"({', '.join('?' for _ in tables)})",
                tuple(tables),
            )
        ]


def raw(url: str, tables: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table, as stored (shadow tables included), in key order."""
    with connect(url) as c:
        return {
            t: [tuple(r) for r in c.exec_driver_sql(f'SELECT * FROM "{t}" ORDER BY 1, 2')]
            for t in tables
        }


FTS5_SHADOWS = ["docs_config", "docs_content", "docs_data", "docs_docsize", "docs_idx"]


def search(word: str) -> str:
    return f"SELECT rowid, title FROM docs WHERE docs MATCH '{word}' ORDER BY rowid"


def test_fts5_writes_are_reset_and_its_tables_get_no_trigger(db_url: str) -> None:
    track(
        db_url,
        "CREATE VIRTUAL TABLE docs USING fts5(title, body, tag UNINDEXED)",
        "INSERT INTO docs (title, body, tag) VALUES ('alpha', 'seeded apple text', 'a'), "
        "('beta', 'seeded banana text', 'b')",
        # a virtual table without shadow tables of its own (it reads docs' index)
        "CREATE VIRTUAL TABLE docs_terms USING fts5vocab(docs, 'row')",
        "CREATE TABLE note (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)",
    )
    assert triggers_on(db_url, ["docs", "docs_terms", *FTS5_SHADOWS]) == []
    baseline = raw(db_url, FTS5_SHADOWS)
    for _ in range(2):
        assert in_subprocess(
            db_url,
            [
                *HEAVY_FTS5,
                "INSERT INTO docs (title, body, tag) VALUES ('gamma', 'test cherry text', 'c')",
                "UPDATE docs SET body = 'test replaced' WHERE title = 'alpha'",
                "DELETE FROM docs WHERE title = 'beta'",
                "INSERT INTO note (body) VALUES ('n')",
            ],
            [search("cherry"), search("apple")],
        ) == [[[603, "gamma"]], []]
        assert alembic_cleandb.clean(db_url) == 1 + len(FTS5_SHADOWS)
        assert raw(db_url, FTS5_SHADOWS) == baseline
        assert in_subprocess(
            db_url,
            ["INSERT INTO docs (docs) VALUES ('integrity-check')"],
            [
                search("seeded"),
                search("cherry"),
                search("heavy"),
                search("replaced"),
                "SELECT term, doc FROM docs_terms WHERE term IN ('apple', 'cherry')",
                "SELECT max(rowid) FROM docs",
            ],
        ) == [[[1, "alpha"], [2, "beta"]], [], [], [], [["apple", 1]], [[2]]]
    assert alembic_cleandb.clean(db_url) == 0  # nothing written: nothing reset
    # a write to an FTS5 table alone is seen too, the FTS5 configuration included
    in_subprocess(db_url, ["INSERT INTO docs (docs, rank) VALUES ('automerge', 2)"])
    assert alembic_cleandb.clean(db_url) == len(FTS5_SHADOWS)
    assert raw(db_url, FTS5_SHADOWS) == baseline
    in_subprocess(db_url, ["INSERT INTO docs (title, body) VALUES ('', '')"])  # no token
    assert alembic_cleandb.clean(db_url) == len(FTS5_SHADOWS)
    assert raw(db_url, FTS5_SHADOWS) == baseline


EXTERNAL = (
    "CREATE TABLE doc (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, body TEXT)",
    "CREATE VIRTUAL TABLE docs USING fts5(title, body, content='doc', content_rowid='id')",
    # the sync triggers of https://sqlite.org/fts5.html#external_content_tables
    "CREATE TRIGGER doc_ai AFTER INSERT ON doc BEGIN "
    "INSERT INTO docs (rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER doc_ad AFTER DELETE ON doc BEGIN INSERT INTO docs (docs, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER doc_au AFTER UPDATE ON doc BEGIN INSERT INTO docs (docs, rowid, title, body) "
    "VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO docs (rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "INSERT INTO doc (title, body) VALUES ('alpha', 'seeded apple'), ('beta', 'seeded banana')",
)


def test_fts5_external_content_index_stays_consistent_with_its_table(db_url: str) -> None:
    track(db_url, *EXTERNAL)
    shadows = ["docs_config", "docs_data", "docs_docsize", "docs_idx"]
    assert triggers_on(db_url, ["docs", *shadows]) == []
    baseline = raw(db_url, ["doc", *shadows])
    for _ in range(2):
        in_subprocess(
            db_url,
            [
                "INSERT INTO doc (title, body) VALUES ('gamma', 'test cherry')",
                "UPDATE doc SET body = 'test replaced' WHERE title = 'alpha'",
                "DELETE FROM doc WHERE title = 'beta'",
            ],
        )
        assert alembic_cleandb.clean(db_url) == 1 + len(shadows)
        assert raw(db_url, ["doc", *shadows]) == baseline
        assert in_subprocess(
            db_url,
            # a sound index (SQLite 3.40 does not compare it with the content table: the
            # searches do, each word of the baseline rows finding its row and no other)
            ["INSERT INTO docs (docs) VALUES ('integrity-check')"],
            [
                search("seeded"),
                search("apple"),
                search("banana"),
                search("cherry"),
                search("replaced"),
            ],
        ) == [[[1, "alpha"], [2, "beta"]], [[1, "alpha"]], [[2, "beta"]], [], []]
    # the application's sync triggers are back and keep the index in step
    assert in_subprocess(
        db_url, ["INSERT INTO doc (title, body) VALUES ('delta', 'test date')"], [search("date")]
    ) == [[[3, "delta"]]]
    assert alembic_cleandb.clean(db_url) == 1 + len(shadows)
    assert in_subprocess(db_url, [], [search("date"), "SELECT max(id) FROM doc"]) == [[], [[2]]]


def test_excluding_an_fts5_table_excludes_its_shadow_tables(db_url: str) -> None:
    track(
        db_url,
        "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
        "INSERT INTO docs (title, body) VALUES ('alpha', 'seeded apple')",
        "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT)",
        exclude=["docs"],
    )
    assert triggers_on(db_url, ["docs", *FTS5_SHADOWS]) == []
    with connect(db_url) as c:
        assert [r[0] for r in c.exec_driver_sql("SELECT name FROM cleandb_tables")] == ["note"]
    in_subprocess(db_url, [*HEAVY_FTS5, "INSERT INTO note (body) VALUES ('n')"])
    assert alembic_cleandb.clean(db_url) == 1  # note; docs is the application's
    assert in_subprocess(db_url, [], ["SELECT count(*) FROM docs"]) == [[[401]]]


def test_excluding_a_shadow_table_alone_is_refused_leaving_nothing(db_url: str) -> None:
    schema = (
        "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
        "INSERT INTO docs (title, body) VALUES ('alpha', 'seeded apple')",
    )
    with pytest.raises(
        ConfigurationError,
        match=r"'docs_data' is a shadow table of the FTS5 virtual table 'docs'.*"
        r"exclude=\['docs'\]",
    ):
        track(db_url, *schema, exclude=["docs_data"])
    with connect(db_url) as c:
        assert (
            c.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name LIKE 'cleandb%'"
            ).fetchall()
            == []
        )


def test_fts4_fts3_and_rtree_writes_are_reset_without_triggers(db_url: str) -> None:
    shadows = {
        "old4": ["content", "segments", "segdir", "docsize", "stat"],
        "old3": ["content", "segments", "segdir"],
        "box": ["node", "rowid", "parent"],
    }
    names = [f"{t}_{s}" for t, suffixes in shadows.items() for s in suffixes]
    track(
        db_url,
        "CREATE VIRTUAL TABLE old4 USING fts4(title, body)",
        "CREATE VIRTUAL TABLE old3 USING fts3(title, body)",
        "CREATE VIRTUAL TABLE box USING rtree(id, x0, x1, y0, y1)",
        "INSERT INTO old4 (title, body) VALUES ('alpha', 'seeded apple')",
        "INSERT INTO box VALUES (1, 0, 1, 0, 1)",
    )
    assert triggers_on(db_url, [*shadows, *names]) == []
    baseline = raw(db_url, names)
    writes = [
        *(
            f"INSERT INTO {t} (title, body) {SERIES} SELECT 'heavy ' || value, "
            "replace(hex(zeroblob(200)), '00', 'heavy word ') FROM series"
            for t in ("old4", "old3")
        ),
        "UPDATE old4 SET body = 'test changed' WHERE title = 'alpha'",
        f"INSERT INTO box {SERIES} SELECT value + 1, value, value + 1, value, value + 2 "
        "FROM series",
        "UPDATE box SET x1 = 5 WHERE id = 1",
    ]
    in_subprocess(db_url, writes)
    assert alembic_cleandb.clean(db_url) == len(names)
    assert raw(db_url, names) == baseline
    assert in_subprocess(
        db_url,
        [],
        [
            "SELECT title FROM old4 WHERE old4 MATCH 'apple'",
            "SELECT count(*) FROM old4 WHERE old4 MATCH 'heavy OR changed'",
            "SELECT count(*) FROM old3",
            "SELECT id, x1 FROM box",
        ],
    ) == [[["alpha"]], [[0]], [[0]], [[1, 1.0]]]
    in_subprocess(db_url, ["UPDATE box SET y1 = 7 WHERE id = 1"])  # in place: one node
    assert alembic_cleandb.clean(db_url) == 1
    assert raw(db_url, names) == baseline
    assert alembic_cleandb.clean(db_url) == 0


def test_virtual_tables_seeded_by_a_migration_after_install_keep_those_rows(
    db_url: str, tmp_path: Path
) -> None:
    """Shadow tables have no triggers, so no mark says a migration step wrote them: every
    sync after a migration takes their baseline anew (an empty R*Tree's rowid table, say)."""
    migrations = Migrations(tmp_path / "migrations", db_url)
    migrations.step(
        *EXTERNAL[:5],
        "CREATE VIRTUAL TABLE box USING rtree(id, x0, x1)",
        "CREATE VIRTUAL TABLE old4 USING fts4(title, body)",
    )
    migrations.step(
        EXTERNAL[5],
        "INSERT INTO box VALUES (1, 0, 1), (2, 5, 6)",
        "INSERT INTO old4 (title, body) VALUES ('alpha', 'seeded apple')",
    )
    migrations.upgrade("s001")
    migrations.upgrade("cleandb@head")
    migrations.upgrade("heads")
    names = [
        "doc",
        *(f"docs_{s}" for s in ("config", "data", "docsize", "idx")),
        *(f"box_{s}" for s in ("node", "parent", "rowid")),
        *(f"old4_{s}" for s in ("content", "docsize", "segdir", "segments", "stat")),
    ]
    migrated = raw(db_url, names)
    assert migrated["box_rowid"] != []
    queries = [search("apple"), "SELECT id FROM box ORDER BY id", "SELECT title FROM old4"]
    assert in_subprocess(db_url, [], queries) == [[[1, "alpha"]], [[1], [2]], [["alpha"]]]
    in_subprocess(
        db_url,
        [
            "DELETE FROM doc WHERE id = 1",
            "DELETE FROM box WHERE id = 2",
            "INSERT INTO box VALUES (3, 7, 8)",
            "DELETE FROM old4",
        ],
    )
    assert alembic_cleandb.clean(db_url) > 0
    assert raw(db_url, names) == migrated
    assert in_subprocess(db_url, [], queries) == [[[1, "alpha"]], [[1], [2]], [["alpha"]]]


def test_fts_writes_of_the_callers_open_transaction_are_reset(db_url: str) -> None:
    """clean(connection) inside the caller's transaction: the terms FTS3/FTS4 and FTS5 still
    keep in memory are written out (the reset's savepoint) before it copies anything back."""
    track(
        db_url,
        "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
        "CREATE VIRTUAL TABLE old4 USING fts4(title, body)",
        "INSERT INTO docs (title, body) VALUES ('alpha', 'seeded apple')",
    )
    names = [*FTS5_SHADOWS, *(f"old4_{s}" for s in ("content", "docsize", "segdir", "stat"))]
    baseline = raw(db_url, names)
    with connect(db_url) as c:  # a few small writes: no crash to fear in this process
        # as many rows and tokens as before
        c.exec_driver_sql("UPDATE docs SET body = 'seeded cherry' WHERE title = 'alpha'")
        c.exec_driver_sql("INSERT INTO old4 (title, body) VALUES ('gamma', 'test cherry')")
        assert alembic_cleandb.clean(c) == len(names)
    assert raw(db_url, names) == baseline
    assert in_subprocess(db_url, [], [search("cherry"), search("apple")]) == [[], [[1, "alpha"]]]


def test_a_scoped_baseline_refuses_a_write_to_a_virtual_table(db_url: str) -> None:
    """Scoped baselines do not cover virtual tables: a push after an FTS5 write refuses,
    naming the table, and starts no layer; the write is reset as any other."""
    track(
        db_url,
        "CREATE VIRTUAL TABLE docs USING fts5(title, body)",
        "INSERT INTO docs (title, body) VALUES ('alpha', 'seeded apple text')",
        "CREATE TABLE note (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)",
    )
    baseline = raw(db_url, FTS5_SHADOWS)
    with alembic_cleandb.Cleaner(db_url) as cleaner:
        in_subprocess(db_url, ["INSERT INTO docs (title, body) VALUES ('gamma', 'cherry')"])
        with pytest.raises(alembic_cleandb.ConfigurationError, match="virtual tables.*'docs'"):
            cleaner.push_baseline()
        assert cleaner.baseline_depth() == 0
        assert cleaner.reset() == len(FTS5_SHADOWS)
        assert raw(db_url, FTS5_SHADOWS) == baseline
        # a scope of ordinary tables is fine next to it
        with cleaner.scope():
            execute(db_url, "INSERT INTO note (body) VALUES ('scoped')")
        assert cleaner.baseline_depth() == 1
        assert cleaner.pop_baseline() == 0
