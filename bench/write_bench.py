"""Write-side cost of tracking: the same INSERT workload on a tracked and an untracked table.

Workloads (one table with no FK and no seed rows, same name in every database):
- multi:       ``multi_rows`` rows in one multi-row INSERT (autocommit)
- single_tx:   ``single_rows`` single-row INSERTs inside one transaction
- single_auto: ``single_rows`` single-row INSERTs, each its own autocommit transaction

Targets: ``untracked`` (plain database), ``ours`` (alembic-cleandb tracking) and ``peer``
(pytest-clean-database's tracking). Between repetitions the table is reset (untimed) with
the target's own reset, so every repetition starts from a clean, unmarked table, as a test
does. Repetitions are interleaved across targets, order rotated.
Statement text is rendered by the driver beforehand where it interpolates on the client
(PyMySQL; the 10k-row statement on psycopg via ClientCursor.mogrify), so the timing is
the server's work, not Python string building that is the same for every target.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from backends import Backend

WORKLOADS = ("multi", "single_tx", "single_auto")


class Target:
    def __init__(
        self, name: str, backend: Backend, db: str, table: str, reset: Callable[[], None]
    ) -> None:
        self.name, self.backend, self.db, self.table = name, backend, db, table
        self.conn = backend.connect(db)
        self.cur = self.conn.cursor()
        self._reset = reset

    def reset(self) -> None:
        self._reset()

    def close(self) -> None:
        self.cur.close()
        self.conn.close()


def _render(backend: Backend, conn: Any, sql: str, params: list[Any]) -> str | None:
    """Driver-side rendering of a parametrised statement; None where binding is native."""
    if backend.name == "mariadb":
        cur = conn.cursor()
        try:
            return cur.mogrify(sql, params)
        finally:
            cur.close()
    if backend.name == "postgresql":
        import psycopg

        cur = psycopg.ClientCursor(conn)
        try:
            return cur.mogrify(sql, params)
        finally:
            cur.close()
    return None


def prepare(
    backend: Backend, conn: Any, table: str, multi_rows: int, single_rows: int
) -> dict[str, Any]:
    mparams: list[Any] = []
    for i in range(multi_rows):
        mparams += ["m%d" % i, i]
    msql = backend.insert_sql(table, multi_rows)
    rendered = _render(backend, conn, msql, mparams)
    ssql = backend.insert_sql(table, 1)
    singles: list[tuple[str, list[Any] | None]] = []
    mcur = conn.cursor() if backend.name == "mariadb" else None
    for i in range(single_rows):
        p = ["s%d" % i, i]
        if mcur is not None:
            singles.append((mcur.mogrify(ssql, p), None))
        else:
            singles.append((ssql, p))  # psycopg/sqlite3 bind natively (psycopg auto-prepares)
    if mcur is not None:
        mcur.close()
    return {
        "multi": (rendered, None) if rendered is not None else (msql, mparams),
        "singles": singles,
    }


def _exec(cur: Any, sql: str, params: list[Any] | None) -> None:
    if params is None:
        cur.execute(sql)
    else:
        cur.execute(sql, params)


def run_workload(t: Target, work: str, stmts: dict[str, Any]) -> int:
    cur = t.cur
    t0 = time.perf_counter_ns()
    if work == "multi":
        _exec(cur, *stmts["multi"])
    elif work == "single_tx":
        cur.execute("BEGIN")
        for sql, p in stmts["singles"]:
            _exec(cur, sql, p)
        cur.execute("COMMIT")
    else:
        for sql, p in stmts["singles"]:
            _exec(cur, sql, p)
    return time.perf_counter_ns() - t0


def run(
    targets: list[Target],
    multi_rows: int,
    single_rows: int,
    reps: int,
    warmup: int = 1,
    min_reps: int = 3,
    budget_s: float = 5.0,
) -> dict[str, Any]:
    """Interleaved repetitions; a target stops after ``min_reps`` once it has spent
    ``budget_s`` on a workload (the peer's 10k-row INSERT takes seconds on MariaDB)."""
    stmts = {t.name: prepare(t.backend, t.conn, t.table, multi_rows, single_rows) for t in targets}
    results: dict[str, Any] = {}
    for work in WORKLOADS:
        samples: dict[str, list[int]] = {t.name: [] for t in targets}
        for t in targets:
            t.reset()
        spent = {t.name: 0 for t in targets}
        gc.collect()
        gc.disable()
        try:
            for rep in range(warmup + reps):
                active = [
                    t
                    for t in targets
                    if len(samples[t.name]) < min_reps or spent[t.name] < budget_s * 1e9
                ]
                if not active:
                    break
                shift = rep % len(active)
                for t in active[shift:] + active[:shift]:
                    ns = run_workload(t, work, stmts[t.name])
                    t.reset()
                    spent[t.name] += ns
                    if rep >= warmup:
                        samples[t.name].append(ns)
        finally:
            gc.enable()
        results[work] = {
            name: {
                "median_ms": statistics.median(v) / 1e6,
                "min_ms": min(v) / 1e6,
                "reps": len(v),
            }
            for name, v in samples.items()
        }
    return results
