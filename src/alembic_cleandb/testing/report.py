"""``--cleandb-report``: what each test wrote, what its reset cost, and writes that no reset
undoes. Everything here runs only when the report is asked for; the per-test reset path stays
one routine call per database otherwise.

Each database gets a :class:`Probe`, a second connection that asks, after every test, which
tracked tables are marked dirty (before the reset clears the marks) and how many rows the
*untracked* tables hold (tables excluded from tracking, or created outside migrations): a row
count that moves is a write the reset cannot undo.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from .._connect import connect, create_engine
from ..backends import backend_for
from ..backends.base import ALWAYS_EXCLUDED

__all__ = ["Probe", "Report"]

# (schema or None, table) of every ordinary table; schema None means the current one.
_ALL_TABLES: dict[str, str] = {
    "postgresql": (
        "SELECT CASE WHEN n.nspname = current_schema() THEN NULL ELSE n.nspname END, c.relname "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cleandb') "
        "AND left(n.nspname, 3) <> 'pg_'"
    ),
    "mysql": (
        "SELECT NULL, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
    ),
    "sqlite": (
        "SELECT NULL, name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
    ),
}
_ALL_TABLES["mariadb"] = _ALL_TABLES["mysql"]


def _fetch(connection: Connection, sql: str) -> list[Any]:
    """Rows of ``sql`` run on the driver's cursor without parameters (no ``%`` parsing)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _display(schema: str | None, name: str) -> str:
    return name if schema is None else f"{schema}.{name}"


class Probe:
    """The report's own connection to one tracked database."""

    def __init__(self, url: str, lock_timeout: float):
        self._engine: Engine = create_engine(url)
        self._connection: Connection = connect(self._engine)
        self.backend = backend_for(self._connection.dialect.name)
        self.backend.configure_session(self._connection, lock_timeout)
        self._tables_sql = _ALL_TABLES[self._connection.dialect.name]
        self.counts = self._untracked_counts()

    def dirty(self) -> list[str]:
        """Tracked tables written since the last reset."""
        return sorted(self.backend.dirty_tables(self._connection))

    def _untracked_counts(self) -> dict[str, int]:
        c = self._connection
        tracked = set(self.backend.tracked_tables(c))
        quote = c.dialect.identifier_preparer.quote
        untracked = [
            (schema, name)
            for schema, name in _fetch(c, self._tables_sql)
            if _display(schema, name) not in tracked
            and not self.backend.own_table(name)
            and name not in ALWAYS_EXCLUDED
        ]
        if not untracked:
            return {}
        counts = ", ".join(
            f"(SELECT COUNT(*) FROM {quote(name) if s is None else quote(s) + '.' + quote(name)})"
            for s, name in untracked
        )
        row = _fetch(c, f"SELECT {counts}")[0]
        return {_display(s, n): int(v) for (s, n), v in zip(untracked, row)}

    def untracked_writes(self) -> list[tuple[str, int | None, int]]:
        """Untracked tables whose row count changed since the last call (``None``: new)."""
        now = self._untracked_counts()
        changed = [
            (name, self.counts.get(name), rows)
            for name, rows in sorted(now.items())
            if self.counts.get(name) != rows
        ]
        self.counts = now
        return changed

    def close(self) -> None:
        self._connection.close()
        self._engine.dispose()


def measure(
    probes: Sequence[Probe], reset: Callable[[], None], timer: Callable[[], float]
) -> dict[str, Any]:
    """Run ``reset`` between the probes' questions; the per-test record (JSON-able)."""
    dirty = [p.dirty() for p in probes]
    start = timer()
    try:
        reset()
    finally:
        seconds = timer() - start
        record: dict[str, Any] = {
            "seconds": seconds,
            "dbs": [
                {"tables": d, "untracked": [list(w) for w in p.untracked_writes()]}
                for d, p in zip(dirty, probes)
            ],
        }
    return record


@dataclass
class Report:
    """Per-test records, gathered in the process that prints the summary."""

    labels: list[str] = field(default_factory=list)  # one per database
    tests: int = 0
    skipped: int = 0
    seconds: list[tuple[float, str]] = field(default_factory=list)
    tables: Counter[str] = field(default_factory=Counter)
    widest: list[tuple[int, str]] = field(default_factory=list)
    untracked: dict[str, list[Any]] = field(default_factory=dict)

    def _name(self, index: int, table: str) -> str:
        if len(self.labels) > 1 and index < len(self.labels):
            return f"{self.labels[index]}: {table}"
        return table

    def add(self, nodeid: str, record: dict[str, Any]) -> None:
        self.tests += 1
        if record.get("skipped"):
            self.skipped += 1
            return
        self.seconds.append((float(record["seconds"]), nodeid))
        written = 0
        for index, db in enumerate(record["dbs"]):
            for table in db["tables"]:
                self.tables[self._name(index, table)] += 1
                written += 1
            for table, before, after in db["untracked"]:
                name = self._name(index, table)
                seen = self.untracked.setdefault(name, [nodeid, before, after, 0])
                seen[2] = after
                seen[3] += 1
        if written:
            self.widest.append((written, nodeid))

    def lines(self, top: int = 5) -> Iterable[str]:
        resets = len(self.seconds)
        total = sum(s for s, _ in self.seconds)
        yield (
            f"{self.tests} tests: {resets} resets, {self.skipped} skipped (cleandb_skip); "
            f"reset time {total:.3f} s in total"
            + (f", {1000 * total / resets:.2f} ms per test" if resets else "")
        )
        if self.seconds:
            yield "slowest resets:"
            for seconds, nodeid in sorted(self.seconds, reverse=True)[:top]:
                yield f"  {1000 * seconds:8.2f} ms  {nodeid}"
        if self.tables:
            yield "tables written most often (number of tests):"
            for table, n in sorted(self.tables.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
                yield f"  {n:8d}  {table}"
        if self.widest:
            yield "tests that wrote the most tables:"
            for n, nodeid in sorted(self.widest, key=lambda x: (-x[0], x[1]))[:top]:
                yield f"  {n:8d}  {nodeid}"
        if self.untracked:
            yield (
                "WRITTEN BUT NOT TRACKED, no reset undoes these writes (tables excluded from "
                "tracking or created outside migrations; see docs/troubleshooting.md):"
            )
            for table, (nodeid, before, after, n) in sorted(self.untracked.items()):
                rows = "new table" if before is None else f"{before} rows"
                yield f"  {table}: {rows} -> {after} rows; first by {nodeid} ({n} tests)"
        else:
            yield "no writes to untracked tables"
