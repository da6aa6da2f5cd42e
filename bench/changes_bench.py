"""cleandb_show_changes: what the default ('failed') costs a suite of passing tests, next to
'never', per backend.

A generated suite of ``--tests`` passing tests, each writing one row to two tables of the
repository's test schema (tests/migrations), runs as a fresh ``python -m pytest``
subprocess with ``--cleandb-show-changes=failed`` and with ``=never``, interleaved (A B, B A,
...; with ``--all`` the order rotates), ``--runs`` times each; the figure is pytest's own
session time (the ``in N.NNs`` of its summary line: interpreter start-up excluded). Prints
the medians, the ratio failed/never and the spread (p10-p90 of the per-pair ratios), the
number of statements each run sent through SQLAlchemy (equal for 'failed' and 'never': a
passing test costs no query more, whatever the machine's noise), and with
``--all`` the same for 'all' (which does compare every test's writes with the baseline: what
a user pays who asks for it).

    .venv/bin/python bench/changes_bench.py --backend postgresql,mariadb,sqlite --tests 200

Databases: creates and drops only ``cleandb_bench_test_changes_*`` (SQLite: a temp file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mariadb+pymysql://root@127.0.0.1:3306/",
}

TEST = """
def test_{i:04d}(db):
    with db.begin() as c:
        c.execute(USER.insert().values(name="u{i}"))
        c.execute(LOG.insert().values(message="m{i}"))
"""
CONFTEST = """
import os
import pytest
import sqlalchemy as sa

META = sa.MetaData()
USER = sa.Table("user", META, sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("name", sa.String(100)))
LOG = sa.Table("event_log", META, sa.Column("message", sa.String(200)))

@pytest.fixture(scope="session")
def db(cleandb_url):
    engine = sa.create_engine(cleandb_url)
    yield engine
    engine.dispose()

# Every statement sent through SQLAlchemy, by any engine (the plugin's comparison included;
# the reset call itself goes to the driver directly): the same count in 'failed' and 'never'
# runs means a passing test costs no query more.
STATEMENTS = [0]

@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _count(*args):
    STATEMENTS[0] += 1

def pytest_sessionfinish(session):
    with open(os.environ["CLEANDB_BENCH_COUNT"], "w") as f:
        f.write(str(STATEMENTS[0]))
"""


def create(backend: str, tmp: Path) -> tuple[str, sa.Engine | None]:
    name = f"cleandb_bench_test_changes_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}", None
    server = sa.create_engine(SERVERS[backend], isolation_level="AUTOCOMMIT")
    quote = server.dialect.identifier_preparer.quote
    with server.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {quote(name)}")
    return str(server.url.set(database=name).render_as_string(hide_password=False)), server


def drop(url: str, server: sa.Engine | None) -> None:
    if server is None:
        return
    name = sa.make_url(url).database or ""
    assert name.startswith("cleandb_bench_test_changes_")
    quote = server.dialect.identifier_preparer.quote
    force = " WITH (FORCE)" if server.dialect.name == "postgresql" else ""
    with server.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(name)}{force}")
    server.dispose()


def run(suite: Path, url: str, mode: str, counts: dict[str, set[int]]) -> float:
    count = suite / "statements.txt"
    env = {
        **os.environ,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "CLEANDB_BENCH_COUNT": str(count),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "alembic_cleandb.testing.plugin",
            "-p",
            "no:cacheprovider",
            f"--cleandb-url={url}",
            f"--cleandb-show-changes={mode}",
            str(suite),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=suite,
    )
    match = re.search(r"(\d+) passed.* in ([\d.]+)s", out.stdout)
    if out.returncode != 0 or match is None:
        raise SystemExit(f"suite failed ({mode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    counts.setdefault(mode, set()).add(int(count.read_text()))
    return float(match.group(2))


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="postgresql,mariadb,sqlite")
    p.add_argument("--tests", type=int, default=200)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--all", action="store_true", help="measure 'all' too")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    modes = ["failed", "never", *(["all"] if args.all else [])]
    results = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        suite = tmp / "suite"
        suite.mkdir()
        (suite / "conftest.py").write_text(CONFTEST)
        body = "from conftest import USER, LOG\n" + "".join(
            TEST.format(i=i) for i in range(args.tests)
        )
        (suite / "test_suite.py").write_text(body)
        for backend in args.backend.split(","):
            url, server = create(backend, tmp)
            try:
                config = Config(str(ROOT / "alembic.ini"), ini_section="cleandb")
                config.attributes["url"] = url
                command.upgrade(config, "heads")
                times: dict[str, list[float]] = {m: [] for m in modes}
                counts: dict[str, set[int]] = {}
                run(suite, url, "never", {})  # warm-up (caches, first connections)
                for r in range(args.runs):
                    order = modes[r % len(modes) :] + modes[: r % len(modes)]  # rotated
                    if r % 2:
                        order.reverse()
                    for mode in order:
                        times[mode].append(run(suite, url, mode, counts))
                ratios = [a / b for a, b in zip(times["failed"], times["never"], strict=True)]
                row = {
                    "median_s": {m: statistics.median(v) for m, v in times.items()},
                    "ratio_failed_never": statistics.median(ratios),
                    "ratio_p10": quantile(ratios, 0.1),
                    "ratio_p90": quantile(ratios, 0.9),
                    "times": times,
                    "statements": {m: sorted(c) for m, c in counts.items()},
                    "load": os.getloadavg(),
                }
                if args.all:
                    row["ratio_all_never"] = statistics.median(
                        [a / b for a, b in zip(times["all"], times["never"], strict=True)]
                    )
                results[backend] = row
                medians = ", ".join(f"{m} {s:.2f} s" for m, s in row["median_s"].items())
                extra = f"; all/never {row['ratio_all_never']:.3f}x" if args.all else ""
                print(
                    f"{backend}: {args.tests} passing tests, {args.runs} runs each: {medians}; "
                    f"failed/never {row['ratio_failed_never']:.3f}x "
                    f"(p10-p90 {row['ratio_p10']:.3f}-{row['ratio_p90']:.3f}){extra}; "
                    f"statements per run (SQLAlchemy-level) {row['statements']}; "
                    f"load {row['load'][0]:.1f}",
                    flush=True,
                )
            finally:
                drop(url, server)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
