"""Migrating a tracked database: a generated history of N steps, with and without tracking.

    .venv/bin/python bench/migrate_bench.py --backend postgresql,mariadb,sqlite --steps 500

Per backend and round (modes interleaved, the order rotating each round), each mode gets a
fresh database named ``cleandb_bench_test_migrate_*`` and ``alembic upgrade heads`` of the
generated history (bench/history.py: every fifth step creates a table, every tenth seeds one,
the others add a column or an index) is timed, nothing else:

- ``plain``:      no tracking installed (the env.py hook is there, as in any wired project);
- ``tracked``:    ``cleandb@head`` installed first (untimed), then the history;
- ``every_step``: tracked, with the hook syncing after every step (what it did before).

Reported: the median seconds per mode and the median over the rounds of ``tracked / plain``
within a round (goal: at most 1.15), with the load average before and after. The databases
are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from alembic import command
from alembic.config import Config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from backends import Backend  # noqa: E402
from history import write_history  # noqa: E402

import alembic_cleandb  # noqa: E402

MODES = ("plain", "tracked", "every_step")


def config(root: Path, url: str, mode: str) -> Config:
    c = Config()
    c.set_main_option("script_location", str(root))
    c.set_main_option("path_separator", "newline")
    c.set_main_option("version_locations", str(root / "versions"))
    c.attributes["url"] = url
    c.attributes["sync_every_step"] = mode == "every_step"
    return alembic_cleandb.enable(c)


def one(b: Backend, root: Path, mode: str) -> float:
    db = f"cleandb_bench_test_migrate_{mode}"
    b.create_database(db)
    url = b.sa_url(db).render_as_string(hide_password=False)
    try:
        if mode != "plain":
            command.upgrade(config(root, url, mode), "cleandb@head")
        start = time.perf_counter()
        command.upgrade(config(root, url, mode), "heads")
        return time.perf_counter() - start
    finally:
        b.drop_database(db)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", default="postgresql,mariadb,sqlite")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args()
    modes = args.modes.split(",")
    root = write_history(Path(tempfile.mkdtemp(prefix="cleandb_history_")), args.steps)
    report: dict[str, object] = {"steps": args.steps, "load_before": os.getloadavg()}
    for name in args.backend.split(","):
        b = Backend.create(name)
        times: dict[str, list[float]] = {m: [] for m in modes}
        for r in range(args.rounds):
            shift = r % len(modes)
            for mode in modes[shift:] + modes[:shift]:
                times[mode].append(one(b, root, mode))
                print(f"{name:10} round {r + 1} {mode:10} {times[mode][-1]:7.2f} s", flush=True)
        med = {m: statistics.median(v) for m, v in times.items()}
        line = ", ".join(f"{m} {med[m]:.2f} s" for m in modes)
        # The ratio of the two runs of the same round (the load moves between rounds).
        ratio = None
        if "tracked" in med and "plain" in med:
            ratio = statistics.median(t / p for t, p in zip(times["tracked"], times["plain"]))
        verdict = ""
        if ratio is not None:
            met = "met" if ratio <= 1.15 else "MISSED"
            verdict = f"; tracked/plain {ratio:.3f} ({met}: goal <= 1.15)"
        print(f"{name:10} medians: {line}{verdict}", flush=True)
        report[name] = {"runs": times, "median_s": med, "tracked_over_plain": ratio}
        b.dispose()
    report["load_after"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
