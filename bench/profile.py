#!/usr/bin/env python
"""Where a reset's time goes: every statement alembic-cleandb's reset runs, with its time.

    .venv/bin/python bench/profile.py --backend postgresql,mariadb --tables 500 --k 1,5,20

On one generated schema (the benchmark's, ``cleandb_bench_test_profile``, dropped at the
end), once every table has been written and reset (the steady state, as in ``run.py``), a
"test" writes 3 rows to each of k random tables, then the reset runs; repeated ``--reps``
times per k. For each statement of the reset (grouped by its text, table names and
oids folded) it prints the median time per reset, and the share of the server's time.

- PostgreSQL: a copy of ``cleandb.reset()`` that takes ``clock_timestamp()`` after each of its
  statements (planning included) and reports them in a NOTICE; the client's wall time adds
  the call, the round trip and the commit.
- MariaDB: ``SET profiling = 1``; ``SHOW PROFILES`` lists every statement inside the
  procedure with its duration.

Profiling costs a little (MariaDB's more): compare the shares, and take absolute figures
from ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ours  # noqa: E402
from backends import DB_PREFIX, Backend  # noqa: E402
from schema import build_schema, create_schema  # noqa: E402
from strategies import write_rows  # noqa: E402

DB = DB_PREFIX + "_profile"


NAMES = {  # statements of the PostgreSQL reset named by what they do
    "IF q IS NOT NULL": "dynamic reset statement (EXECUTE of the dirty tables' fragments)",
    "IF NOT restart_ids": "sequences back to their baseline (setval)",
}


def label(query: str) -> str:
    """A statement's group: its text on one line, identifiers that vary per reset folded."""
    text = " ".join(query.split())
    for prefix, name in NAMES.items():
        if text.startswith(prefix):
            return name
    if text.startswith("WITH c") or text.startswith("EXPLAIN WITH c"):
        return "dynamic reset statement (the dirty tables' fragments)"
    text = re.sub(r"`?t\d{4}`?", "<table>", text)
    text = re.sub(r"\b\d+\b", "<n>", text)
    return text[:90]


def instrumented(definition: str) -> str:
    """``cleandb.reset()``'s definition as ``public.cleandb_profiled_reset()``, with a
    ``clock_timestamp()`` taken after every top-level statement and a NOTICE at the end
    listing ``label=microseconds`` for each (an IF block counts as one statement)."""
    lines = definition.splitlines()
    out: list[str] = []
    body = depth = 0
    start = ""
    for line in lines:
        stripped = line.strip()
        if not body:
            out.append(line.replace("cleandb.reset(", "public.cleandb_profiled_reset("))
            if stripped == "DECLARE":
                out.append("  cleandb_ts timestamptz[]; cleandb_labels text[];")
            elif stripped == "BEGIN":
                body = 1
                out.append("  cleandb_ts := ARRAY[clock_timestamp()];")
            continue
        if stripped.startswith("RETURN coalesce"):
            out.append(
                "  RAISE NOTICE '%', (SELECT string_agg(cleandb_labels[i] || '=' || "
                "extract(microseconds FROM cleandb_ts[i + 1] - cleandb_ts[i])::bigint, '|') "
                "FROM generate_subscripts(cleandb_labels, 1) AS i);"
            )
            out.append(line)
            continue
        out.append(line)
        if not stripped or stripped.startswith("--") or stripped in ("END", "$function$"):
            continue
        if depth == 0 and not start:
            start = stripped
        if stripped.startswith("IF ") or stripped.startswith("IF\t"):
            depth += 1
        if stripped == "END IF;":
            depth -= 1
        if depth == 0 and stripped.endswith(";"):
            label_text = start.replace("'", "''")[:70]
            out.append(
                f"  cleandb_ts := cleandb_ts || clock_timestamp(); "
                f"cleandb_labels := cleandb_labels || '{label_text}'::text;"
            )
            start = ""
    return "\n".join(out)


class Profiler:
    def __init__(self, b: Backend, restart_ids: bool = True) -> None:
        self.b = b
        self.flag = "TRUE" if restart_ids else "FALSE"
        self.conn = b.connect(DB)
        self.notices: list[str] = []
        self.seen = 0  # MariaDB: the last Query_ID already counted
        if b.name == "postgresql":
            # as the Cleaner configures its connection (PostgreSQLBackend.configure_session):
            # the reset's own writes fire no trigger
            self.conn.execute("SET session_replication_role = replica")
            self.conn.add_notice_handler(lambda d: self.notices.append(d.message_primary))
            definition = self.conn.execute(
                "SELECT pg_get_functiondef('cleandb.reset(boolean)'::regprocedure)"
            ).fetchone()[0]
            self.conn.execute(instrumented(definition))
        else:
            cur = self.conn.cursor()
            cur.execute("SET profiling_history_size = 100")
            cur.close()

    def close(self) -> None:
        if self.b.name == "postgresql":
            self.conn.execute("DROP FUNCTION public.cleandb_profiled_reset(boolean)")
        self.conn.close()

    def reset(self) -> tuple[float, dict[str, float]]:
        """(client wall ms, {statement: server ms}) of one reset."""
        parts: dict[str, float] = defaultdict(float)
        if self.b.name == "postgresql":
            self.notices.clear()
            t0 = time.perf_counter()
            self.conn.execute(f"SELECT public.cleandb_profiled_reset({self.flag})").fetchall()
            wall = (time.perf_counter() - t0) * 1000
            for note in self.notices:
                for item in note.split("|"):
                    name, _, us = item.rpartition("=")
                    parts[label(name)] += int(us) / 1000
            return wall, parts
        cur = self.conn.cursor()
        cur.execute("SET profiling = 1")
        t0 = time.perf_counter()
        cur.execute(f"CALL cleandb_reset({self.flag})")
        while cur.nextset():
            pass
        wall = (time.perf_counter() - t0) * 1000
        cur.execute("SET profiling = 0")
        cur.execute("SHOW PROFILES")
        for query_id, duration, query in cur.fetchall():
            if query_id > self.seen and not str(query).startswith("SET profiling"):
                parts[label(str(query))] += float(duration) * 1000
            self.seen = max(self.seen, query_id)
        cur.close()
        return wall, parts


def profile(
    b: Backend, n: int, ks: list[int], reps: int, keep: bool, restart_ids: bool = True
) -> None:
    schema = build_schema(n)
    b.create_database(DB)
    try:
        create_schema(b.engine(DB), schema)
        ours.install(b.engine(DB))
        b.settle([DB])
        writer = b.connect(DB)
        wcur = writer.cursor()
        prof = Profiler(b, restart_ids)
        rng = random.Random(7)
        for i in range(0, n, 20):  # warm-up: every table reset once (see reset_bench.warm)
            write_rows(b, wcur, schema.names[i : i + 20])
            prof.reset()
        for k in ks:
            walls: list[float] = []
            per: dict[str, list[float]] = defaultdict(list)
            for rep in range(reps + 5):
                write_rows(b, wcur, rng.sample(schema.names, k))
                wall, parts = prof.reset()
                if rep < 5:  # warm-up
                    continue
                walls.append(wall)
                for name in set(per) | set(parts):
                    per[name].append(parts.get(name, 0.0))
            mode = "" if restart_ids else ", restart_ids=False"
            print(f"\n== {b.name}{mode}, N = {n}, k = {k}: median per reset over {reps} resets ==")
            print(f"client wall time (with profiling on): {statistics.median(walls):8.3f} ms")
            rows = sorted(((statistics.median(v), name) for name, v in per.items()), reverse=True)
            server = sum(ms for ms, _ in rows)
            print(f"server time in the statements below: {server:8.3f} ms")
            for ms, name in rows:
                share = f"{ms / server:6.1%}" if server else ""
                print(f"{ms:8.3f} ms {share:>7}  {name}")
        prof.close()
        writer.close()
    finally:
        if not keep:
            b.drop_database(DB)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="postgresql,mariadb")
    p.add_argument("--tables", type=int, default=500)
    p.add_argument("--k", default="1,5,20")
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument(
        "--restart-ids",
        choices=("always", "never"),
        default="always",
        help="the reset profiled: always (the default) or never (rows only, ids keep counting)",
    )
    a = p.parse_args()
    for name in a.backend.split(","):
        if name not in ("postgresql", "mariadb"):
            p.error(f"profiles PostgreSQL and MariaDB (SQLite resets in the library): {name!r}")
        ks = [int(k) for k in a.k.split(",")]
        profile(Backend.create(name), a.tables, ks, a.reps, a.keep, a.restart_ids == "always")


if __name__ == "__main__":
    main()
