"""Reset strategies. Each has its own database (same schema and seeds) and its own
connections: a writer that plays the test, and a resetter that plays the fixture.
Only ``reset()`` is timed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ours
import peer as peer_mod
from backends import Backend
from schema import Schema

ROWS_PER_TABLE = 3


def write_rows(
    backend: Backend, cur: Any, tables: Sequence[str], rows: int = ROWS_PER_TABLE
) -> None:
    params: list[Any] = []
    for i in range(rows):
        params += ["w%d" % i, i]
    for t in tables:
        cur.execute(backend.insert_sql(t, rows), params)


class Strategy:
    name = ""
    label = ""
    writes = True
    check_ids = True
    checked = True  # semantics checked after each N (a floor that cleans nothing is not)
    #: Its reset touches only the tables written: warmed on every table before timing (see
    #: reset_bench.warm); one that empties every table is warm after its first reset.
    warm_per_table = False
    #: Timed in a second pass of each cell, after the others (see reset_bench.run_cell).
    disturbs = False

    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        self.backend, self.db, self.schema = backend, db, schema
        self.writer = backend.connect(db)
        self.wcur = self.writer.cursor()

    def write(self, tables: Sequence[str]) -> None:
        if self.writes and tables:
            write_rows(self.backend, self.wcur, tables)

    def reset(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.wcur.close()
        self.writer.close()


class Ours(Strategy):
    name, label = "ours", "alembic-cleandb"
    warm_per_table = True

    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        super().__init__(backend, db, schema)
        self.resetter = ours.Resetter(backend, db)

    def reset(self) -> None:
        self.resetter()

    def close(self) -> None:
        super().close()
        self.resetter.close()


class OursNever(Ours):
    """Ours with ``restart_ids=False`` (``cleandb_restart_ids = never``): rows back to the
    baseline with DELETE and INSERT only, ids keep counting (no DDL on MariaDB)."""

    name, label = "ours_never", "alembic-cleandb, restart_ids=False"
    check_ids = False  # ids keep counting: by design not back at the seeded position

    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        Strategy.__init__(self, backend, db, schema)
        self.resetter = ours.Resetter(backend, db, restart_ids=False)


class Peer(Strategy):
    name, label = "peer", "pytest-clean-database 1.0.0"
    warm_per_table = True

    def __init__(self, backend: Backend, db: str, schema: Schema, tracker: peer_mod.Peer) -> None:
        super().__init__(backend, db, schema)
        self.tracker = tracker

    def reset(self) -> None:
        self.tracker.reset()


class _Batch(Strategy):
    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        super().__init__(backend, db, schema)
        self.resetter = backend.connect(db)
        self.stmts = self.build(schema.names)

    def build(self, tables: Sequence[str]) -> list[str]:
        raise NotImplementedError

    def reset(self) -> None:
        self.backend.run_batch(self.resetter, self.stmts)

    def close(self) -> None:
        super().close()
        self.resetter.close()


class TruncateAll(_Batch):
    name, label = "truncate_all", "truncate-all (one statement)"
    disturbs = True

    def build(self, tables: Sequence[str]) -> list[str]:
        return self.backend.truncate_all_sql(tables)


class DeleteAll(_Batch):
    name, label = "delete_all", "delete-all (one transaction)"

    def build(self, tables: Sequence[str]) -> list[str]:
        return self.backend.delete_all_sql(tables)


class Rollback(Strategy):
    """Writes inside a transaction, reset = ROLLBACK. Cannot see other connections' writes."""

    name, label = "rollback", "transaction rollback (floor)"
    check_ids = False

    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        self.backend, self.db, self.schema = backend, db, schema
        self.writer = backend.connect(db, autocommit=False)
        self.wcur = self.writer.cursor()

    def reset(self) -> None:
        self.writer.rollback()


class Select1(Strategy):
    name, label = "select1", "SELECT 1 round trip (floor)"
    writes = False

    def __init__(self, backend: Backend, db: str, schema: Schema) -> None:
        super().__init__(backend, db, schema)
        self.resetter = backend.connect(db)
        self.rcur = self.resetter.cursor()

    def reset(self) -> None:
        self.rcur.execute("SELECT 1")
        self.rcur.fetchall()

    def close(self) -> None:
        super().close()
        self.rcur.close()
        self.resetter.close()


class Select1AfterWrites(Select1):
    """The same round trip, timed in the same place as every reset: right after the test's
    writes on the writer connection (rows are left behind; nothing is cleaned).

    A back-to-back ``SELECT 1`` on an idle server is faster than any round trip that follows
    a write (the writer's commit and its wake-ups share the two cores), so this is the floor a
    reset is compared with at k >= 1; at k = 0 nothing is written and both floors coincide.
    """

    name, label = "select1_w", "SELECT 1 right after the writes (floor)"
    writes = True
    checked = False


ORDER = [
    "ours",
    "ours_never",
    "peer",
    "truncate_all",
    "delete_all",
    "rollback",
    "select1",
    "select1_w",
]
LABELS = {
    c.name: c.label
    for c in (Ours, OursNever, Peer, TruncateAll, DeleteAll, Rollback, Select1, Select1AfterWrites)
}


def check_semantics(s: Strategy, tables: Sequence[str]) -> dict[str, Any]:
    """After write + reset: row counts back to the seeded baseline? ids restart? (untimed)"""
    b = s.backend
    s.write(tables)
    s.reset()
    conn = b.connect(s.db)
    cur = conn.cursor()
    rows_bad: list[str] = []
    ids_bad: list[str] = []
    try:
        for t in tables:
            cur.execute("SELECT COUNT(*) FROM " + b.q(t))
            got = cur.fetchone()[0]
            want = s.schema.seeded.get(t, 0)
            if got != want:
                rows_bad.append("%s:%d/%d" % (t, got, want))
        if s.check_ids:
            for t in tables:
                want = s.schema.seeded.get(t, 0) + 1
                sql = b.insert_sql(t, 1)
                if b.name == "postgresql":
                    cur.execute(sql + " RETURNING id", ["chk", 0])
                    got = cur.fetchone()[0]
                elif b.name == "mariadb":
                    cur.execute(sql, ["chk", 0])
                    got = cur.lastrowid
                else:
                    cur.execute(sql, ["chk", 0])
                    got = cur.lastrowid
                if got != want:
                    ids_bad.append("%s:%d/%d" % (t, got, want))
            s.reset()
    finally:
        cur.close()
        conn.close()
    return {
        "tables": len(tables),
        "rows_ok": not rows_bad,
        "ids_ok": (not ids_bad) if s.check_ids else None,
        "rows_bad": rows_bad[:5],
        "ids_bad": ids_bad[:5],
    }
