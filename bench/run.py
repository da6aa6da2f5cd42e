#!/usr/bin/env python
"""Side-by-side benchmark of per-test database cleanup strategies.

    .venv/bin/python bench/run.py --backend postgresql,mariadb,sqlite --tables 10,100,500 \\
        --out bench/results
    .venv/bin/python bench/run.py --quick          # ~1 minute smoke run

Creates its own databases (``cleandb_bench_test_*``; it refuses any other name) and drops
them afterwards. See bench/README.md for the method. No timing is ever asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import random
import signal
import sys
import time
import traceback
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

import goals  # noqa: E402
import ours  # noqa: E402
import peer  # noqa: E402
import report  # noqa: E402
import reset_bench  # noqa: E402
import strategies as st  # noqa: E402
import suite_bench  # noqa: E402
import write_bench  # noqa: E402
from backends import DB_PREFIX, Backend  # noqa: E402
from schema import UNTRACKED, Schema, build_schema, create_schema, untracked_twin  # noqa: E402

T0 = time.perf_counter()


def log(msg: str = "") -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}" if msg else "", flush=True)


def csv(s: str, conv: Any = str) -> list[Any]:
    return [conv(x.strip()) for x in s.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backend", default="postgresql,mariadb,sqlite", help="comma list")
    p.add_argument("--tables", default=None, help="schema sizes N (default 10,100,500)")
    p.add_argument("--k", default="0,1,5,20", help="tables written per test (default 0,1,5,20)")
    p.add_argument("--strategies", default=",".join(st.ORDER), help="reset strategies to run")
    p.add_argument("--parts", default="reset,write,suite", help="which parts to run")
    p.add_argument("--out", default=os.path.join(BENCH_DIR, "results"), help="output directory")
    p.add_argument("--quick", action="store_true", help="~1 minute smoke run (small N, few reps)")
    p.add_argument("--budget", type=float, default=None, help="seconds per strategy per cell")
    p.add_argument(
        "--cold",
        action="store_true",
        help="no warm-up: tables are reset for the first time in the session during the timing",
    )
    p.add_argument("--min-reps", type=int, default=None)
    p.add_argument("--max-reps", type=int, default=None)
    p.add_argument("--write-rows", default=None, help="multi-row,single-row counts (10000,1000)")
    p.add_argument("--write-reps", type=int, default=None)
    p.add_argument("--suite-tests", type=int, default=None, help="default 300")
    p.add_argument("--suite-tables", type=int, default=None, help="default 200")
    p.add_argument("--suite-runs", type=int, default=None, help="default 3")
    p.add_argument(
        "--suite-cap",
        type=float,
        default=45.0,
        help="a suite strategy whose run took longer than this many seconds is not repeated",
    )
    p.add_argument(
        "--suite-truncate-tests",
        type=int,
        default=None,
        help="run truncate-all on this many tests and project to the whole suite "
        "(default 40, --quick 10; 0 = the whole suite, ~4-5 min per backend)",
    )
    p.add_argument("--pg-url", default=None, help="SQLAlchemy URL of the PostgreSQL server")
    p.add_argument("--mariadb-url", default=None, help="SQLAlchemy URL of the MariaDB server")
    p.add_argument("--no-peer", action="store_true", help="skip pytest-clean-database")
    p.add_argument(
        "--mariadb-file-per-table",
        choices=("server", "on", "off"),
        default="server",
        help="MariaDB: innodb_file_per_table while the benchmark creates its tables (set "
        "server-wide for the run, then restored; needs SUPER). off puts them in the system "
        "tablespace, where TRUNCATE is cheaper. Default: leave the server as it is",
    )
    p.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--from-json", metavar="PATH", help="only re-render tables, summary and chart of a run"
    )
    a = p.parse_args(argv)
    q = a.quick
    a.tables = csv(a.tables or ("10,50" if q else "10,100,500"), int)
    a.k = csv(a.k, int)
    a.backend = csv(a.backend)
    a.strategies = csv(a.strategies)
    a.parts = csv(a.parts)
    a.budget = a.budget if a.budget is not None else (0.1 if q else 0.8)
    a.min_reps = a.min_reps or (3 if q else 7)
    a.max_reps = a.max_reps or (25 if q else 300)
    a.write_rows = csv(a.write_rows or ("1000,50" if q else "10000,1000"), int)
    a.write_reps = a.write_reps or (2 if q else 31)
    a.suite_tests = a.suite_tests or (40 if q else 300)
    a.suite_tables = a.suite_tables or (30 if q else 200)
    a.suite_runs = a.suite_runs or (1 if q else 3)
    if a.suite_truncate_tests is None:
        a.suite_truncate_tests = 10 if q else 40
    for b in a.backend:
        if b not in ("postgresql", "mariadb", "sqlite"):
            p.error(f"unknown backend {b!r}")
    for s in a.strategies:
        if s not in st.ORDER:
            p.error("unknown strategy {!r} (choose from {})".format(s, ",".join(st.ORDER)))
    return a


def db_name(role: str) -> str:
    return DB_PREFIX + "_" + role


# ---------------------------------------------------------------------------- setup
class Setup:
    """The databases of one (backend, N): one per strategy, same schema and seeds."""

    def __init__(
        self,
        b: Backend,
        schema: Schema,
        wanted: list[str],
        ours_reason: str | None,
        peer_reason: str | None,
        need_write: bool,
    ) -> None:
        self.b, self.schema = b, schema
        self.dbs: dict[str, str] = {}
        self.strategies: list[st.Strategy] = []
        self.unavailable: dict[str, str] = {}
        self.tracker: peer.Peer | None = None
        roles = {
            "ours": "ours",
            "ours_never": "oursnever",
            "peer": "peer",
            "truncate_all": "trunc",
            "delete_all": "delete",
            "rollback": "plain",
            "select1": "plain",
            "select1_w": "plain",
        }
        needed = list(dict.fromkeys(wanted + (["ours", "peer", "select1"] if need_write else [])))
        for s in needed:
            if s in ("ours", "ours_never") and ours_reason:
                self.unavailable[s] = ours_reason
                continue
            if s == "peer":
                if b.name == "sqlite":
                    self.unavailable[s] = "pytest-clean-database supports PostgreSQL and MySQL only"
                    continue
                if peer_reason:
                    self.unavailable[s] = peer_reason
                    continue
            self.dbs.setdefault(roles[s], db_name(roles[s]))
        for db in self.dbs.values():
            t = time.perf_counter()
            b.create_database(db)
            create_schema(b.engine(db), schema)
            log("  created %s (%d tables) in %.1fs" % (db, schema.n, time.perf_counter() - t))
        exclude: tuple[str, ...] = ()
        if need_write and "ours" in self.dbs:
            # The write benchmark's untracked table lives next to the tracked one (see run_write)
            untracked_twin(schema).create(b.engine(self.dbs["ours"]))
            exclude = (UNTRACKED,)
        for role, excluded in (("ours", exclude), ("oursnever", ())):
            if role not in self.dbs:
                continue
            try:
                t = time.perf_counter()
                ours.install(b.engine(self.dbs[role]), exclude=excluded)
                log("  %s: install_clean_tracking() in %.2fs" % (role, time.perf_counter() - t))
            except Exception as exc:
                name = "ours" if role == "ours" else "ours_never"
                self.unavailable[name] = f"install failed: {type(exc).__name__}: {exc}"
                log("  %s: %s" % (role, self.unavailable[name]))
                traceback.print_exc(limit=3)
                self._drop(role)
        if "peer" in self.dbs:
            try:
                t = time.perf_counter()
                self.tracker = peer.Peer(b.name, b.peer_dsn(self.dbs["peer"]))
                self.tracker.setup()
                log("  peer: setup_tracing() in %.2fs" % (time.perf_counter() - t))
            except Exception as exc:
                self.unavailable["peer"] = f"setup failed: {type(exc).__name__}: {exc}"
                log("  peer: " + self.unavailable["peer"])
                self._drop("peer")
        t = time.perf_counter()
        b.settle(list(self.dbs.values()))
        if b.name == "postgresql":
            log("  settled (VACUUM ANALYZE, CHECKPOINT) in %.1fs" % (time.perf_counter() - t))
        for s in wanted:
            if s in self.unavailable:
                continue
            db = self.dbs[roles[s]]
            try:
                if s == "ours":
                    self.strategies.append(st.Ours(b, db, schema))
                elif s == "ours_never":
                    self.strategies.append(st.OursNever(b, db, schema))
                elif s == "peer":
                    assert self.tracker is not None
                    self.strategies.append(st.Peer(b, db, schema, self.tracker))
                elif s == "truncate_all":
                    self.strategies.append(st.TruncateAll(b, db, schema))
                elif s == "delete_all":
                    self.strategies.append(st.DeleteAll(b, db, schema))
                elif s == "rollback":
                    self.strategies.append(st.Rollback(b, db, schema))
                elif s == "select1":
                    self.strategies.append(st.Select1(b, db, schema))
                elif s == "select1_w":
                    self.strategies.append(st.Select1AfterWrites(b, db, schema))
            except Exception as exc:
                self.unavailable[s] = f"{type(exc).__name__}: {exc}"

    def _drop(self, role: str) -> None:
        db = self.dbs.pop(role, None)
        if db and not ARGS.keep:
            self.b.drop_database(db)

    def close_strategies(self) -> None:
        for s in self.strategies:
            with contextlib.suppress(Exception):
                s.close()
        self.strategies = []

    def close(self) -> None:
        self.close_strategies()
        if self.tracker is not None:
            self.tracker.close()
        if not ARGS.keep:
            for role in list(self.dbs):
                self._drop(role)


def check_tables(schema: Schema) -> list[str]:
    """A seeded table, a FK child and its parent, and a plain table."""
    out = [next(iter(schema.seeded))]
    if schema.fk_tables:
        child = schema.fk_tables[0]
        parent = next(
            iter(schema.metadata.tables[child].c.parent_id.foreign_keys)
        ).column.table.name
        out += [child, parent]
    out.append(schema.plain_tables()[0])
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------ parts
def run_reset(b: Backend, setup: Setup, rng: random.Random) -> dict[str, Any]:
    schema = setup.schema
    nres: dict[str, Any] = {"strategies": [s.name for s in setup.strategies], "by_k": {}}
    params = reset_bench.CellParams(ARGS.budget, ARGS.min_reps, ARGS.max_reps)
    nres["warmed"] = not ARGS.cold
    if not ARGS.cold:
        log(
            "  warm-up: every table written and reset once (%.1fs)"
            % reset_bench.warm(setup.strategies, schema.names)
        )
    picks: dict[int, list[list[str]]] = {}
    for group in (
        [s for s in setup.strategies if not s.disturbs],
        [s for s in setup.strategies if s.disturbs],  # after every k (see reset_bench)
    ):
        for k in ARGS.k:
            if k > schema.n or not group:
                continue
            t = time.perf_counter()
            cell = reset_bench.run_cell(
                group, schema.names, k, params, rng, picks.setdefault(k, [])
            )
            nres["by_k"].setdefault(str(k), {}).update(cell)
            log(
                "  k=%-3d %s  (%.1fs)"
                % (
                    k,
                    "  ".join(
                        "{} {} ms".format(n, report._fmt_ms(c["median_ms"]))
                        for n, c in cell.items()
                    ),
                    time.perf_counter() - t,
                )
            )
    if nres["by_k"]:
        last = list(nres["by_k"])[-1]
        nres["reps_note"] = (
            last,
            ", ".join("%s %d" % (n, c["reps"]) for n, c in nres["by_k"][last].items()),
        )
    nres["checks"] = reset_bench.check_all(setup.strategies, check_tables(schema))
    return nres


def _then_vacuum(reset: Any, conn: Any, table: str) -> Any:
    def reset_and_vacuum() -> None:
        reset()
        conn.execute("VACUUM " + table)

    return reset_and_vacuum


def run_write(b: Backend, setup: Setup) -> dict[str, Any]:
    schema = setup.schema
    table = schema.plain_tables()[-1]
    out: dict[str, Any] = {
        "n": schema.n,
        "table": table,
        "multi_rows": ARGS.write_rows[0],
        "single_rows": ARGS.write_rows[1],
        "unavailable_targets": {},
    }
    targets: list[write_bench.Target] = []
    extra_conns: list[Any] = []
    # The untracked table is a twin of the tracked one in the same database, excluded from
    # tracking at install, written on the same connection, so that only the trigger differs:
    # with the untracked table in another database (another server process), single-row
    # INSERTs in one transaction took 55 or 83 us from run to run on the untracked side alone.
    # Without our tracking (ours not selected or not installable) it is the same table in
    # the plain database.
    ours_db = setup.dbs.get("ours") if "ours" not in setup.unavailable else None
    u_db, u_table = (ours_db, UNTRACKED) if ours_db else (setup.dbs.get("plain"), table)
    if u_db is None:
        return {"unavailable": "no untracked database"}
    out["untracked"] = f"{u_table} in {'the tracked database' if ours_db else u_db}"
    pc = b.connect(u_db)
    extra_conns.append(pc)
    # The untracked table is emptied the way our reset empties a table without seeds on that
    # backend (PostgreSQL: DELETE and the identity back to 1; MariaDB: TRUNCATE; SQLite:
    # DELETE and sqlite_sequence), so that both tables take the next repetition's rows in the
    # same physical state: a TRUNCATEd table against one full of deleted rows, or new ids
    # against ids whose deleted index entries are still there, moved the 10,000-row INSERT by
    # up to 40%.
    if b.name == "postgresql":
        empty = [
            f"BEGIN; DELETE FROM {b.q(u_table)}; SELECT setval(pg_get_serial_sequence("
            f"'{b.q(u_table)}', 'id'), 1, false); COMMIT"
        ]
    else:
        empty = b.truncate_all_sql([u_table])
    if ours_db:
        oc = ours.Resetter(b, ours_db)
        extra_conns.append(oc)
        tracked = write_bench.Target("ours", b, ours_db, table, oc)
        untracked = write_bench.Target(
            "untracked", b, u_db, u_table, lambda: b.run_batch(pc, empty), share=tracked
        )
        targets += [untracked, tracked]
    else:
        untracked = write_bench.Target(
            "untracked", b, u_db, u_table, lambda: b.run_batch(pc, empty)
        )
        targets.append(untracked)
        out["unavailable_targets"]["ours"] = setup.unavailable.get("ours", "not selected")
    if setup.tracker is not None and "peer" not in setup.unavailable:
        tr = setup.tracker
        targets.append(write_bench.Target("peer", b, setup.dbs["peer"], table, tr.reset))
    else:
        out["unavailable_targets"]["peer"] = setup.unavailable.get("peer", "not selected")
    if b.name == "postgresql":
        # After its reset each table is vacuumed (untimed): the deleted rows and their index
        # entries otherwise stay until autovacuum comes by, and whether the next 10,000 ids
        # meet them decided more of the INSERT's time (17 vs 32 ms) than the tracking did.
        for t in targets:
            vc = b.connect(t.db)
            extra_conns.append(vc)
            t._reset = _then_vacuum(t._reset, vc, b.q(t.table))
    out["targets"] = [t.name for t in targets]
    try:
        out["results"] = write_bench.run(
            targets, ARGS.write_rows[0], ARGS.write_rows[1], ARGS.write_reps
        )
    finally:
        for t in targets:
            t.close()
        for c in extra_conns:
            c.close()
    for work, res in out["results"].items():
        log(
            "  write %-11s %s"
            % (
                work,
                "  ".join(
                    "{} {} ms".format(n, report._fmt_ms(r["median_ms"])) for n, r in res.items()
                ),
            )
        )
    return out


def restore_baseline(b: Backend, db: str, schema: Schema) -> None:
    conn = b.connect(db)
    try:
        b.run_batch(conn, b.truncate_all_sql(schema.names))
    finally:
        conn.close()
    eng = b.engine(db)
    with eng.begin() as c:
        for name, count in schema.seeded.items():
            c.execute(
                schema.metadata.tables[name].insert(),
                [{"label": "seed%d" % j, "val": j} for j in range(count)],
            )


def count_rows(b: Backend, db: str, tables: list[str]) -> int:
    conn = b.connect(db)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT SUM(c) FROM ("
            + " UNION ALL ".join("SELECT COUNT(*) AS c FROM " + b.q(t) for t in tables)
            + ") AS counts"
        )
        total = int(cur.fetchone()[0] or 0)
        cur.close()
        return total
    finally:
        conn.close()


#: The suite strategies that run our plugin on the tracked database.
OURS_SUITE = ("ours", "ours_never", "ours_n2")


def run_suite(b: Backend, ours_reason: str | None, peer_reason: str | None) -> dict[str, Any]:
    schema = build_schema(ARGS.suite_tables, seed=ARGS.seed + 7)
    root = os.path.join(os.path.abspath(ARGS.out), "suite", b.name)
    tests = suite_bench.generate_tests(b, schema, ARGS.suite_tests, ARGS.seed)
    py_main, py_peer = sys.executable, peer.venv_python()
    plugin_reason = ours_reason or ours.plugin_unavailable_reason()
    dbs = {
        "ours": db_name("suite_ours"),
        "peer": db_name("suite_peer"),
        "plain": db_name("suite_plain"),
    }
    strats: list[suite_bench.SuiteStrategy] = []
    ours_url = b.sa_url(dbs["ours"]).render_as_string(hide_password=False)
    strats.append(
        suite_bench.SuiteStrategy(
            "ours",
            py_main,
            ini=ours.plugin_ini_lines(ours_url),
            addopts=ours.plugin_args(),
            unavailable=plugin_reason,
        )
    )
    peer_extra = (
        suite_bench.CONFTEST_PEER.format(dsn=b.peer_dsn(dbs["peer"])) if b.name != "sqlite" else ""
    )
    if b.name == "mariadb":
        peer_extra += suite_bench.CONFTEST_PEER_MARIADB
    strats.append(
        suite_bench.SuiteStrategy(
            "peer",
            py_peer,
            conftest_extra=peer_extra,
            addopts=["-p", peer.PLUGIN_MODULE],
            unavailable=(
                "pytest-clean-database supports PostgreSQL and MySQL only"
                if b.name == "sqlite"
                else peer_reason
            ),
        )
    )
    trunc = suite_bench.CONFTEST_TRUNCATE.format(
        stmts=b.truncate_all_sql(schema.names), drain=b.name == "mariadb"
    )
    sub = ARGS.suite_truncate_tests
    sub = sub if 0 < sub < ARGS.suite_tests else None
    strats.append(
        suite_bench.SuiteStrategy("truncate_all", py_main, conftest_extra=trunc, n_tests=sub)
    )
    strats.append(suite_bench.SuiteStrategy("none", py_main))
    # The floor of a suite whose application imports SQLAlchemy (one migrated with Alembic
    # does): our plugin imports it, the floor above and the peer do not.
    strats.append(
        suite_bench.SuiteStrategy("none_sa", py_main, conftest_extra="import sqlalchemy\n")
    )
    # The same plugin with cleandb_restart_ids = never (rows only, ids keep counting), on the
    # same database: the untimed reset before each run (prep) restarts its counters.
    strats.append(
        suite_bench.SuiteStrategy(
            "ours_never",
            py_main,
            ini=ours.plugin_ini_lines(ours_url, "never"),
            addopts=ours.plugin_args(),
            unavailable=plugin_reason,
        )
    )
    # The -n 2 speed-up: the same suite and plugin, two xdist workers, one database copy each.
    strats.append(
        suite_bench.SuiteStrategy(
            "ours_n2",
            py_main,
            ini=[*ours.plugin_ini_lines(ours_url), "cleandb_url_env = CLEANDB_BENCH_URL"],
            conftest_extra=suite_bench.CONFTEST_WORKER_URL,
            addopts=[*ours.plugin_args(), "-p", "xdist.plugin", "-n", "2"],
            unavailable=plugin_reason,
        )
    )
    if sub is not None:
        strats.append(suite_bench.SuiteStrategy("none_prefix", py_main, n_tests=sub))
    if b.name != "sqlite" and not peer_reason:
        strats.append(suite_bench.SuiteStrategy("none_peer_venv", py_peer))
    used = {
        "ours": "ours" if strats[0].unavailable is None else None,
        "peer": "peer" if strats[1].unavailable is None else None,
        "plain": "plain",
    }
    created: list[str] = []
    try:
        for role, db in dbs.items():
            if used[role] is None:
                continue
            t = time.perf_counter()
            b.create_database(db)
            created.append(db)
            create_schema(b.engine(db), schema)
            log("  created %s (%d tables) in %.1fs" % (db, schema.n, time.perf_counter() - t))
        if used["ours"]:
            try:
                ours.install(b.engine(dbs["ours"]))
            except Exception as exc:
                for s in strats:
                    if s.name in OURS_SUITE:
                        s.unavailable = f"install failed: {type(exc).__name__}: {exc}"
        dirs: dict[str, str] = {}
        prepare: dict[str, Any] = {}
        for s in strats:
            if s.unavailable:
                continue
            db = (
                dbs["ours"]
                if s.name in OURS_SUITE
                else dbs["peer"]
                if s.name == "peer"
                else dbs["plain"]
            )
            dirs[s.name] = suite_bench.write_suite(root, s, b, db, tests, files=10)

            def prep(s: suite_bench.SuiteStrategy = s, db: str = db) -> None:
                if s.name in OURS_SUITE:
                    r = ours.Resetter(b, db)
                    try:
                        r()
                    finally:
                        r.close()
                    return
                if s.name == "peer":
                    c = b.connect(db)
                    try:
                        peer.drop_tracking(b, c, schema.names)
                    finally:
                        c.close()
                restore_baseline(b, db, schema)

            prepare[s.name] = prep

        def leftover(name: str) -> int:
            """Rows above the seeded baseline after a run (0 = the suite left the db clean)."""
            db = (
                dbs["ours"]
                if name in OURS_SUITE
                else dbs["peer"]
                if name == "peer"
                else dbs["plain"]
            )
            return count_rows(b, db, schema.names) - sum(schema.seeded.values())

        results = suite_bench.run_suites(
            dirs, strats, prepare, ARGS.suite_runs, ARGS.suite_cap, log=log, after=leftover
        )
        if sub is not None:
            suite_bench.project(results, "truncate_all", "none_prefix", ARGS.suite_tests)
    finally:
        if not ARGS.keep:
            for db in created:
                b.drop_database(db)
    return {
        "tests": ARGS.suite_tests,
        "tables": ARGS.suite_tables,
        "results": results,
        "pytest": {
            "ours/truncate_all/none": "main venv",
            "peer/none_peer_venv": "bench/.venv-peer",
        },
    }


# ------------------------------------------------------------------------- main
ARGS: argparse.Namespace


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit("terminated by signal %d" % signum)  # runs the finally: blocks (drops dbs)


def main(argv: list[str] | None = None) -> int:
    global ARGS
    ARGS = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    if ARGS.from_json:
        with open(ARGS.from_json) as f:
            data = json.load(f)
        data["goals"] = goals.evaluate(data)
        base = os.path.splitext(ARGS.from_json)[0].replace("results", "", 1)
        out_dir = os.path.dirname(os.path.abspath(ARGS.from_json))
        suffix = os.path.basename(base)
        return finish(data, os.path.abspath(ARGS.from_json), out_dir, suffix)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    data: dict[str, Any] = {
        "meta": {
            "started": started,
            "argv": sys.argv[1:],
            "python": platform.python_version(),
            "machine": "%s, %d cores" % (platform.platform(), os.cpu_count() or 0),
            "quick": ARGS.quick,
            "params": {k: v for k, v in vars(ARGS).items() if k not in ("pg_url", "mariadb_url")},
            "servers": {},
            "loadavg_start": os.getloadavg(),
        },
        "notes": [],
        "reset": {},
        "write": {},
        "suite": {},
    }
    load1 = os.getloadavg()[0]
    if load1 > 0.5 * (os.cpu_count() or 1):
        msg = "machine busy at start (load average %.1f on %d cores): timings will be noisy" % (
            load1,
            os.cpu_count() or 1,
        )
        log("WARNING: " + msg)
        data["notes"].append(msg)
    ours_reason = ours.unavailable_reason() if "ours" in ARGS.strategies else "not selected"
    mod, note = ours.load()
    data["meta"]["alembic_cleandb"] = note
    if ours_reason:
        log("ours: SKIPPED: " + ours_reason)
        data["notes"].append("ours unavailable: " + ours_reason)
    peer_reason: str | None = "disabled by --no-peer" if ARGS.no_peer else peer.ensure_venv(log)
    if peer_reason:
        log("peer: SKIPPED: " + peer_reason)
    else:
        data["meta"]["peer"] = "pytest-clean-database " + str(peer.installed_version())
        if "mariadb" in ARGS.backend:
            data["notes"].append(
                peer.MARIADB_NOTE + " (its TRUNCATE of FK-referenced tables fails otherwise)"
            )
            log("note: " + peer.MARIADB_NOTE)
    urls = {"postgresql": ARGS.pg_url, "mariadb": ARGS.mariadb_url, "sqlite": None}
    rng = random.Random(ARGS.seed)
    for bname in ARGS.backend:
        b = Backend.create(bname, urls[bname])
        try:
            data["meta"]["servers"][bname] = b.server_info()
        except Exception as exc:
            log(f"{bname}: SKIPPED, server not reachable: {exc}")
            data["notes"].append(f"{bname} skipped: {exc}")
            continue
        restore_fpt: bool | None = None
        if bname == "mariadb" and ARGS.mariadb_file_per_table != "server":
            restore_fpt = b.set_file_per_table(ARGS.mariadb_file_per_table == "on")
            data["meta"]["servers"][bname] = b.server_info()
        log("== {} {}".format(bname, data["meta"]["servers"][bname]))
        bres: dict[str, Any] = {"by_n": {}, "unavailable": {}}
        data["reset"][bname] = bres
        try:
            for n in ARGS.tables:
                log("-- %s N=%d" % (bname, n))
                schema = build_schema(n, seed=ARGS.seed)
                wanted = ARGS.strategies if "reset" in ARGS.parts else []
                need_write = "write" in ARGS.parts and n == max(ARGS.tables)
                setup = Setup(b, schema, wanted, ours_reason, peer_reason, need_write)
                try:
                    bres["unavailable"].update(setup.unavailable)
                    if "reset" in ARGS.parts and setup.strategies:
                        bres["by_n"][str(n)] = run_reset(b, setup, rng)
                    setup.close_strategies()
                    if need_write:
                        log("-- %s write side, N=%d" % (bname, n))
                        data["write"][bname] = run_write(b, setup)
                finally:
                    setup.close()
            if "suite" in ARGS.parts:
                log(
                    "-- %s suite: %d tests over %d tables"
                    % (bname, ARGS.suite_tests, ARGS.suite_tables)
                )
                data["suite"][bname] = run_suite(b, ours_reason, peer_reason)
        except Exception as exc:
            log(f"{bname}: ERROR {type(exc).__name__}: {exc}")
            traceback.print_exc()
            data["notes"].append(f"{bname} aborted: {type(exc).__name__}: {exc}")
        finally:
            if restore_fpt is not None:
                b.set_file_per_table(restore_fpt)
            b.dispose()
    data["goals"] = goals.evaluate(data)
    data["meta"]["elapsed_s"] = round(time.perf_counter() - T0, 1)
    data["meta"]["loadavg_end"] = os.getloadavg()
    suffix = "-quick" if ARGS.quick else ""
    jpath = os.path.join(ARGS.out, f"results{suffix}.json")
    report.write_json(data, jpath)
    log("")
    return finish(data, jpath, ARGS.out, suffix)


def finish(data: dict[str, Any], jpath: str, out_dir: str, suffix: str) -> int:
    summary: list[str] = []
    report.print_report(data, log=summary.append)
    print("\n".join(summary))
    tpath = os.path.join(out_dir, f"summary{suffix}.txt")
    with open(tpath, "w") as f:
        f.write("\n".join(summary).lstrip("\n") + "\n")
    print()
    print("json: " + jpath + "  (tables also in " + tpath + ")")
    print(report.chart(data, os.path.join(out_dir, f"reset_vs_n{suffix}.png")))
    print("elapsed: %.1f s" % (time.perf_counter() - T0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
