"""The speed goals of issue 3, evaluated against a run's results (reported, never asserted)."""

from __future__ import annotations

from typing import Any

# (backend, N, k, kind, other, limit[, who]): kind "le" = who <= limit * other;
# "faster" = other >= limit * who; who is "ours" unless given (issue 15: "ours_never", the
# reset with restart_ids=False)
RESET_GOALS: list[tuple[Any, ...]] = [
    # "select1" is a back-to-back round trip on an idle connection; "select1_w" the same round
    # trip timed where a reset is timed, right after the test's writes (at k = 0 they agree).
    ("postgresql", 500, 0, "le", "select1", 1.5),
    ("postgresql", 500, 1, "le", "select1", 4.0),
    ("postgresql", 500, 1, "le", "select1_w", 4.0),
    ("postgresql", 500, 1, "faster", "peer", 5.0),
    ("postgresql", 500, 5, "faster", "peer", 8.0),
    ("postgresql", 500, 20, "faster", "peer", 10.0),
    ("postgresql", 500, 5, "faster", "truncate_all", 500.0),
    ("postgresql", 500, 20, "faster", "truncate_all", 500.0),
    ("mariadb", 500, 0, "le", "select1", 1.5),
    ("mariadb", 500, 1, "faster", "peer", 2.0),
    ("mariadb", 500, 5, "faster", "peer", 2.0),
    ("mariadb", 500, 1, "faster", "peer", 2.0, "ours_never"),
    ("mariadb", 500, 5, "faster", "peer", 2.0, "ours_never"),
]
WRITE_GOALS = [
    ("postgresql", "multi", 1.05),
    ("postgresql", "single_tx", 1.25),
    ("postgresql", "single_auto", 1.10),
    ("mariadb", "single_auto", 1.15),
    ("mariadb", "multi", 1.5),
]
SUITE_GOALS = [
    ("postgresql", 1.2, "ours"),
    ("mariadb", 1.5, "ours"),
    ("mariadb", 1.5, "ours_never"),
]


def _med(cell: dict[str, Any], name: str) -> float | None:
    v = cell.get(name)
    return v.get("median_ms") if isinstance(v, dict) else None


def evaluate(data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, limit: float, higher_is_better: bool) -> None:
        if value is None:
            out.append({"goal": goal, "measured": None, "target": limit, "met": None})
            return
        met = value >= limit if higher_is_better else value <= limit
        out.append({"goal": goal, "measured": round(value, 3), "target": limit, "met": met})

    for b, n, k, kind, other, limit, *rest in RESET_GOALS:
        who = rest[0] if rest else "ours"
        cell = (
            data.get("reset", {})
            .get(b, {})
            .get("by_n", {})
            .get(str(n), {})
            .get("by_k", {})
            .get(str(k))
        )
        if cell is None:
            continue
        o, x = _med(cell, who), _med(cell, other)
        if kind == "le":
            add(
                "%s N=%d k=%d: %s / %s <= %gx" % (b, n, k, who, other, limit),
                o / x if o and x else None,
                limit,
                False,
            )
        else:
            add(
                "%s N=%d k=%d: %s / %s >= %gx" % (b, n, k, other, who, limit),
                x / o if o and x else None,
                limit,
                True,
            )
    for b, work, limit in WRITE_GOALS:
        wb = data.get("write", {}).get(b, {})
        w = wb.get("results", {}).get(work)
        if not w:
            continue
        # the median of the per-repetition ratios (see write_bench.run); older results: the
        # ratio of the medians
        paired = (w.get("ours") or {}).get("paired_ratio")
        o, u = (w.get("ours") or {}).get("median_ms"), (w.get("untracked") or {}).get("median_ms")
        add(
            f"{b} N={wb.get('n')} write {work}: tracked / untracked <= {limit:g}x",
            paired if paired is not None else (o / u if o and u else None),
            limit,
            False,
        )
    for b, limit, who in SUITE_GOALS:
        res = data.get("suite", {}).get(b, {}).get("results")
        if not res or who not in res:
            continue
        o = (res.get(who) or {}).get("median_s")
        f = (res.get("none") or {}).get("median_s")
        add(
            f"{b} suite: {who} / no-cleanup floor <= {limit:g}x",
            o / f if o and f else None,
            limit,
            False,
        )
        if who != "ours":
            continue
        for other in ("peer", "truncate_all"):
            x = (res.get(other) or {}).get("median_s")
            add(f"{b} suite: {other} / ours > 1x", x / o if o and x else None, 1.0, True)
    return out


def lines(results: list[dict[str, Any]]) -> list[str]:
    if not results:
        return []
    out = ["", "== goals of issue 3 (reported, not asserted) =="]
    for r in results:
        if r["met"] is None:
            status, val = "n/a", "-"
        else:
            status = "met" if r["met"] else "MISSED"
            val = "{:.2f}x".format(r["measured"])
        out.append("%-7s %-62s measured %s" % (status, r["goal"], val))
    return out
