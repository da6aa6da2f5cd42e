"""Per-test reset cost: write a few rows to k tables, then time the reset, per strategy.

Strategies run in the same process, interleaved: every repetition picks k tables at random
(the same for every strategy), then each still-active strategy writes and resets, in an
order rotated per repetition. A strategy stops when it has at least ``min_reps`` samples
and has spent its time budget (or reached ``max_reps``), so slow strategies (truncate-all
at N = 500) get fewer samples rather than stretching the run.

Before the first cell, every strategy whose reset touches only the tables written has
written and reset every table once (:func:`warm`): the figures are a long suite's steady
state. A session's first statement on a table costs more on every strategy (PostgreSQL
builds the table's relation cache entry and compiles its triggers' functions for it;
MariaDB opens it into the table cache), so without that the median at N = 500 depended on
how many repetitions had touched each table - on the machine's speed, through the budget.
``--cold`` skips the warm-up, to see those first resets.

Truncate-all is timed after the other strategies' cells of each N (``disturbs``), on the
same sequences of tables. On PostgreSQL one TRUNCATE of 500 tables RESTART IDENTITY - in
its own database - queues more cache invalidation messages than the server keeps (4096), so
every other session that has fallen behind loses its whole relation and plan cache (a
session's per-table statement: 0.02 ms before, 0.11 ms right after, 5 times out of 5), and
all 500 tables are cold for it again until each is next reset: interleaved, it made ours
0.95 instead of 0.65 ms at k = 1 and 2.3 instead of 1.2 ms at k = 5, still at the next k. A
real suite does not run a 500-table TRUNCATE between its tests. Truncate-all's own cost is
two to three orders of magnitude above the others', so timing it apart changes its figures
by less than its run-to-run spread.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strategies import Strategy, check_semantics


@dataclass
class CellParams:
    budget_s: float
    min_reps: int
    max_reps: int
    warmup: int = 5


def summarize(samples_ns: Sequence[int]) -> dict[str, Any]:
    ms = sorted(x / 1e6 for x in samples_ns)
    if not ms:
        return {"median_ms": None, "reps": 0}
    q = statistics.quantiles(ms, n=10) if len(ms) >= 2 else [ms[0]] * 9
    return {
        "median_ms": statistics.median(ms),
        "p10_ms": q[0],
        "p90_ms": q[-1],
        "min_ms": ms[0],
        "reps": len(ms),
    }


def warm(strategies: Sequence[Strategy], pool: Sequence[str], chunk: int = 20) -> float:
    """Write and reset every table of ``pool`` once per strategy that needs it (``chunk``
    tables per reset); the seconds it took."""
    t0 = time.perf_counter()
    tables = list(pool)
    for s in strategies:
        if not s.warm_per_table:
            continue
        for i in range(0, len(tables), chunk):
            s.write(tables[i : i + chunk])
            s.reset()
    return time.perf_counter() - t0


def run_cell(
    strategies: Sequence[Strategy],
    pool: Sequence[str],
    k: int,
    params: CellParams,
    rng: random.Random,
    picks: list[list[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time ``strategies`` at ``k``. ``picks``: the tables of each repetition so far; a
    later pass over other strategies given the same list replays them (and extends it)."""
    samples: dict[str, list[int]] = {s.name: [] for s in strategies}
    gc.collect()
    gc.disable()
    try:
        _interleave(strategies, pool, k, params, rng, [] if picks is None else picks, samples)
    finally:
        gc.enable()
    return {name: summarize(v) for name, v in samples.items()}


def _interleave(
    strategies: Sequence[Strategy],
    pool: Sequence[str],
    k: int,
    params: CellParams,
    rng: random.Random,
    picks: list[list[str]],
    samples: dict[str, list[int]],
) -> None:
    spent: dict[str, float] = {s.name: 0.0 for s in strategies}
    active = list(strategies)
    rep = 0
    while active:
        if rep == len(picks):
            picks.append(rng.sample(list(pool), k))
        chosen = picks[rep]
        shift = rep % len(active)
        for s in active[shift:] + active[:shift]:
            w0 = time.perf_counter()
            s.write(chosen)
            t0 = time.perf_counter_ns()
            s.reset()
            t1 = time.perf_counter_ns()
            spent[s.name] += time.perf_counter() - w0
            if rep >= params.warmup:
                samples[s.name].append(t1 - t0)
        rep += 1
        if rep > params.warmup:
            active = [
                s
                for s in active
                if len(samples[s.name]) < params.max_reps
                and (len(samples[s.name]) < params.min_reps or spent[s.name] < params.budget_s)
            ]


def check_all(strategies: Sequence[Strategy], tables: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in strategies:
        if not s.writes or not s.checked:
            continue
        try:
            out[s.name] = check_semantics(s, tables)
        except Exception as exc:  # report, never abort the benchmark
            out[s.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
