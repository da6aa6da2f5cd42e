"""Scoped baselines (layers): what a layer costs the per-test reset, and what a push and a pop
cost, side by side in one process.

* reset: two databases with the same generated schema (N tables, bench/schema.py), one at
  depth 0, one with a layer open that re-took every seeded table and a few others. Each
  repetition writes 3 rows to the same k random tables in both, then resets each (order
  alternated), timing only the reset. Reported: medians and their ratio layer / plain.
* push/pop: on the plain database, write 3 rows to k tables, time push_baseline(); write
  again, time pop_baseline() (which resets). The same k at two N shows whether the cost
  follows the tables written (k) or the tables tracked (N).

    .venv/bin/python bench/scope_bench.py --backend mariadb,sqlite --tables 20,200 --k 1,5

Databases are named cleandb_bench_test_scope_* and dropped at the end. The machine is
usually shared: ratios from interleaved samples mean more than the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ours  # noqa: E402
from backends import Backend  # noqa: E402
from schema import build_schema, create_schema  # noqa: E402


def _writer(backend: Backend, db: str) -> Callable[[list[str]], None]:
    engine = backend.engine(db)

    params = ("w0", 0, "w1", 1, "w2", 2)

    def write(tables: list[str]) -> None:
        with engine.begin() as c:
            for t in tables:
                c.exec_driver_sql(backend.insert_sql(t, 3), params)

    return write


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


def run(backend: Backend, n: int, ks: list[int], reps: int) -> None:
    mod, _ = ours.load()
    schema = build_schema(n)
    plain, layered = "cleandb_bench_test_scope_plain", "cleandb_bench_test_scope_layer"
    for db in (plain, layered):
        backend.create_database(db)
        create_schema(backend.engine(db), schema)
        ours.install(backend.engine(db))
    rng = random.Random(n)
    cleaners = {
        db: mod.Cleaner(backend.sa_url(db).render_as_string(hide_password=False))
        for db in (plain, layered)
    }
    writers = {db: _writer(backend, db) for db in (plain, layered)}
    try:
        layer = cleaners[layered]
        writers[layered](list(schema.seeded) + rng.sample(schema.names, 5))
        layer.backend.push_baseline(layer._connection)
        for k in ks:
            samples: dict[str, list[float]] = {plain: [], layered: []}
            for rep in range(reps + 5):
                tables = rng.sample(schema.names, k)
                order = (plain, layered) if rep % 2 else (layered, plain)
                for db in order:
                    writers[db](tables)
                    ms = _timed(cleaners[db].reset)
                    if rep >= 5:  # warm-up
                        samples[db].append(ms)
            a, b = statistics.median(samples[plain]), statistics.median(samples[layered])
            print(
                f"{backend.name:8} N={n:4} k={k:2} reset: no layer {a:7.3f} ms, "
                f"in a layer {b:7.3f} ms, ratio {b / a:5.2f} ({reps} reps each)"
            )
            c = cleaners[plain]
            pushes, pops = [], []
            for _ in range(max(5, reps // 4)):
                tables = rng.sample(schema.names, k)
                writers[plain](tables)
                pushes.append(_timed(lambda c=c: c.backend.push_baseline(c._connection)))
                writers[plain](tables)
                pops.append(_timed(lambda c=c: c.backend.pop_baseline(c._connection)))
            print(
                f"{backend.name:8} N={n:4} k={k:2} push {statistics.median(pushes):7.2f} ms, "
                f"pop {statistics.median(pops):7.2f} ms ({len(pushes)} reps)"
            )
    finally:
        for c in cleaners.values():
            c.close()
        for db in (plain, layered):
            backend.drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="mariadb,sqlite")
    parser.add_argument("--tables", default="20,200")
    parser.add_argument("--k", default="1,5")
    parser.add_argument("--reps", type=int, default=60)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    for name in args.backend.split(","):
        backend = Backend.create(name)
        try:
            for n in (int(x) for x in args.tables.split(",")):
                run(backend, n, [int(k) for k in args.k.split(",")], args.reps)
        finally:
            backend.dispose()


if __name__ == "__main__":
    main()
