"""Write-side cost of tracking: the same INSERT workload on a tracked and an untracked table.

Workloads (one table with no FK and no seed rows):
- multi:       ``multi_rows`` rows in one multi-row INSERT (autocommit)
- single_tx:   ``single_rows`` single-row INSERTs inside one transaction
- single_auto: ``single_rows`` single-row INSERTs, each its own autocommit transaction

Targets: ``ours`` (alembic-cleandb tracking), ``untracked`` (a twin of that table in the same
database, excluded from tracking, written on the same connection: only the trigger differs)
and ``peer`` (pytest-clean-database's tracking, its own database). Between repetitions each
table is reset (untimed) with its target's own reset, so every repetition starts from a
clean, unmarked table, as a test does. The multi-row INSERT: repetitions interleaved across
targets, order rotated; the single-row workloads: statement by statement across targets
(see :func:`run_singles`).
Statement text is rendered by the driver beforehand where it interpolates on the client
(PyMySQL; the 10k-row statement on psycopg via ClientCursor.mogrify), so the timing is
the server's work, not Python string building that is the same for every target. The
10k-row statement is never prepared on the server: psycopg prepares a statement at its 5th
execution, and then each repetition either reused the cached plan (0.01 ms) or, when the
untimed VACUUM had invalidated it, planned the 10,000 rows again (26-28 ms, server log),
by chance: the median flipped between those two modes from run to run.
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
    """One table written by the workloads; ``share`` writes on another target's connection."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        db: str,
        table: str,
        reset: Callable[[], None],
        share: Target | None = None,
    ) -> None:
        self.name, self.backend, self.db, self.table = name, backend, db, table
        self._owns = share is None
        self.conn = backend.connect(db) if share is None else share.conn
        self.cur = self.conn.cursor()
        self._reset = reset

    def reset(self) -> None:
        self._reset()

    def close(self) -> None:
        self.cur.close()
        if self._owns:
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


def _exec(cur: Any, sql: str, params: list[Any] | None, **kw: Any) -> None:
    if params is None:
        cur.execute(sql, **kw)
    else:
        cur.execute(sql, params, **kw)


def run_multi(t: Target, stmts: dict[str, Any]) -> int:
    t0 = time.perf_counter_ns()
    _exec(t.cur, *stmts["multi"], **t.backend.unprepared)
    return time.perf_counter_ns() - t0


def run_singles(
    targets: list[Target], work: str, stmts: dict[str, Any], shift: int
) -> dict[str, int]:
    """The single-row workloads of every target at once, statement by statement in turn (the
    order rotated at every statement), each statement timed on its own: whatever the machine
    does meanwhile (another process, a frequency change) falls on every target alike. Run one
    target after another, the untracked table's 1,000 INSERTs in one transaction took 57 or
    144 ms from run to run on the same connection. ``single_tx``: each connection runs its
    statements in one transaction; BEGIN and COMMIT are not counted (the untracked and the
    tracked table share a connection, hence a commit)."""
    clock = time.perf_counter_ns
    ns = {t.name: 0 for t in targets}
    owners = list({id(t.conn): t for t in targets}.values())
    if work == "single_tx":
        for t in owners:
            t.cur.execute("BEGIN")
    try:
        for i in range(len(stmts[targets[0].name]["singles"])):
            k = (shift + i) % len(targets)
            for t in targets[k:] + targets[:k]:
                sql, p = stmts[t.name]["singles"][i]
                t0 = clock()
                _exec(t.cur, sql, p)
                ns[t.name] += clock() - t0
    finally:
        if work == "single_tx":
            for t in owners:
                t.cur.execute("COMMIT")
    return ns


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
    ``budget_s`` on a workload (the peer's 10k-row INSERT takes seconds on MariaDB).

    Per target and workload: the median and minimum time, and ``paired_ratio``, the median
    over repetitions of its time divided by the untracked table's in the same repetition.
    The machine goes through phases that last several repetitions and move both tables
    alike (the 10k-row INSERT took 41-45 ms for a few repetitions, then 60-70 ms, on both
    tables): a ratio taken within each repetition cancels them, the ratio of the two
    medians does not when the phases fall unevenly."""
    stmts = {t.name: prepare(t.backend, t.conn, t.table, multi_rows, single_rows) for t in targets}
    results: dict[str, Any] = {}
    for work in WORKLOADS:
        samples: dict[str, list[int]] = {t.name: [] for t in targets}
        # each target's time over the untracked table's in the same repetition
        ratios: dict[str, list[float]] = {t.name: [] for t in targets}
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
                if work == "multi":
                    took = {}
                    for t in active[shift:] + active[:shift]:
                        took[t.name] = run_multi(t, stmts[t.name])
                        t.reset()
                else:
                    took = run_singles(active, work, stmts, shift)
                    for t in active:
                        t.reset()
                for name, ns in took.items():
                    spent[name] += ns
                    if rep >= warmup:
                        samples[name].append(ns)
                if rep >= warmup and "untracked" in took:
                    for name, ns in took.items():
                        ratios[name].append(ns / took["untracked"])
        finally:
            gc.enable()
        results[work] = {
            name: {
                "median_ms": statistics.median(v) / 1e6,
                "min_ms": min(v) / 1e6,
                "reps": len(v),
                "paired_ratio": statistics.median(ratios[name]) if ratios[name] else None,
            }
            for name, v in samples.items()
        }
    return results
