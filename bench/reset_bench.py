"""Per-test reset cost: write a few rows to k tables, then time the reset, per strategy.

Strategies run in the same process, interleaved: every repetition picks k tables at random
(the same for every strategy), then each still-active strategy writes and resets, in an
order rotated per repetition. A strategy stops when it has at least ``min_reps`` samples
and has spent its time budget (or reached ``max_reps``), so slow strategies (truncate-all
at N = 500) get fewer samples rather than stretching the run.
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


def run_cell(
    strategies: Sequence[Strategy],
    pool: Sequence[str],
    k: int,
    params: CellParams,
    rng: random.Random,
) -> dict[str, dict[str, Any]]:
    samples: dict[str, list[int]] = {s.name: [] for s in strategies}
    spent: dict[str, float] = {s.name: 0.0 for s in strategies}
    active = list(strategies)
    rep = 0
    gc.collect()
    gc.disable()
    try:
        while active:
            chosen = rng.sample(list(pool), k)
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
    finally:
        gc.enable()
    return {name: summarize(v) for name, v in samples.items()}


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
