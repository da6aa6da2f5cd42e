"""Scoped baselines (cleandb_scope / Cleaner.scope()): what starting and ending a scope costs,
and whether an open scope slows the per-test reset.

For each backend and N (tracked tables), in one process:

- push/pop: write 3 rows to each of k tables (the "fixture"), then time
  ``Cleaner.push_baseline()``; write one row to one of them (a "test"), reset; then time
  ``Cleaner.pop_baseline()`` (which restores the k tables). The goal: flat in N - the ratio
  N = 500 / N = 50 of the medians near 1.
- reset: one row written to one table, then ``Cleaner.reset()`` timed, interleaved A/B: no
  scope open (A) and a scope holding 5 tables open (B). The goal: B/A near 1.

    .venv/bin/python bench/scope_pg_bench.py                       # PostgreSQL, N = 50, 500
    .venv/bin/python bench/scope_pg_bench.py --backend postgresql,mariadb,sqlite --reps 40

Databases are named ``cleandb_bench_test_scope_*`` and dropped at the end. Medians in ms;
the load average is printed: on a loaded machine compare the ratios, not the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

import ours
import sqlalchemy as sa
from backends import Backend
from schema import build_schema, create_schema

KS = (1, 5, 20)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def write(engine: sa.Engine, backend: Backend, tables: list[str], rows: int) -> None:
    with engine.begin() as c:
        for t in tables:
            c.exec_driver_sql(
                f"INSERT INTO {backend.q(t)} (label, val) VALUES "
                + ", ".join(f"('bench', {i})" for i in range(rows))
            )


def measure(backend: Backend, n: int, reps: int) -> dict[str, float]:
    import alembic_cleandb

    db = f"cleandb_bench_test_scope_{n}"
    backend.create_database(db)
    try:
        schema = build_schema(n)
        engine = backend.engine(db)
        create_schema(engine, schema)
        ours.install(engine)
        backend.settle([db])
        plain = schema.plain_tables()
        rng = random.Random(n)
        url = backend.sa_url(db)
        out: dict[str, float] = {}
        with alembic_cleandb.Cleaner(url) as cleaner:
            for t in range(0, len(plain), 20):  # warm: every table written and reset once
                write(engine, backend, plain[t : t + 20], 1)
                cleaner.reset()
            push: dict[int, list[float]] = {k: [] for k in KS}
            pop: dict[int, list[float]] = {k: [] for k in KS}
            for _ in range(reps):
                for k in KS:
                    tables = rng.sample(plain, k)
                    write(engine, backend, tables, 3)
                    push[k].append(timed(cleaner.push_baseline))
                    write(engine, backend, tables[:1], 1)
                    cleaner.reset()
                    pop[k].append(timed(cleaner.pop_baseline))
            for k in KS:
                out[f"push k={k}"] = statistics.median(push[k])
                out[f"pop k={k}"] = statistics.median(pop[k])
            # The per-test reset, no scope open (A) / a scope of 5 tables open (B), interleaved.
            a: list[float] = []
            b: list[float] = []
            for i in range(reps * 2):
                table = rng.choice(plain)
                for open_scope in (i % 2 == 0, i % 2 == 1):
                    if open_scope:
                        write(engine, backend, rng.sample(plain, 5), 3)
                        cleaner.push_baseline()
                    write(engine, backend, [table], 1)
                    (b if open_scope else a).append(timed(cleaner.reset))
                    if open_scope:
                        cleaner.pop_baseline()
            out["reset, no scope"] = statistics.median(a)
            out["reset, scope open"] = statistics.median(b)
        return out
    finally:
        backend.dispose()
        backend.drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="postgresql")
    parser.add_argument("--tables", default="50,500")
    parser.add_argument("--reps", type=int, default=30)
    args = parser.parse_args()
    sizes = [int(x) for x in args.tables.split(",")]
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in args.backend.split(","):
        backend = Backend.create(name)
        results = {n: measure(backend, n, args.reps) for n in sizes}
        print(f"\n{name} (median ms, {args.reps} repetitions)")
        header = "".join(f"{'N=' + str(n):>10}" for n in sizes)
        print(f"{'':24}{header}{'ratio':>10}")
        for key in results[sizes[0]]:
            figures = [results[n][key] for n in sizes]
            ratio = figures[-1] / figures[0]
            print(f"{key:24}" + "".join(f"{f:10.2f}" for f in figures) + f"{ratio:10.2f}")
        for n in sizes:
            r = results[n]
            print(
                f"N={n}: reset with a scope open / without: "
                f"{r['reset, scope open'] / r['reset, no scope']:.2f}"
            )


if __name__ == "__main__":
    main()
