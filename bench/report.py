"""Terminal tables, JSON and the PNG chart."""

from __future__ import annotations

import json
import os
from typing import Any

from strategies import LABELS, ORDER

SHORT = {
    "ours": "ours",
    "ours_never": "ours-never",
    "peer": "peer",
    "truncate_all": "trunc-all",
    "delete_all": "delete-all",
    "rollback": "rollback",
    "select1": "SELECT 1",
    "select1_w": "SEL1+w",
}


def _fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    return (f"{r:.0f}x") if r >= 100 else (f"{r:.1f}x" if r >= 10 else f"{r:.2f}x")


def _median(cell: dict[str, Any], name: str) -> float | None:
    v = cell.get(name)
    return v.get("median_ms") if isinstance(v, dict) else None


def reset_tables(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for b, bres in data.get("reset", {}).items():
        unavailable = bres.get("unavailable", {})
        for n, nres in bres.get("by_n", {}).items():
            names = [s for s in ORDER if s in nres.get("strategies", [])]
            out.append("")
            out.append(f"== {b}, N = {n} tables: median ms per reset (p10-p90 in JSON) ==")
            head = "%4s " % "k" + "".join("%11s" % SHORT[s] for s in names)
            head += "%11s%11s%11s%11s%11s" % (
                "ours/SEL1",
                "ours/SEL1w",
                "peer/ours",
                "peer/never",
                "trunc/ours",
            )
            out.append(head)
            for k, cell in nres.get("by_k", {}).items():
                row = "%4s " % k + "".join("%11s" % _fmt_ms(_median(cell, s)) for s in names)
                o = _median(cell, "ours")
                row += "%11s%11s%11s%11s%11s" % (
                    _ratio(o, _median(cell, "select1")),
                    _ratio(o, _median(cell, "select1_w")),
                    _ratio(_median(cell, "peer"), o),
                    _ratio(_median(cell, "peer"), _median(cell, "ours_never")),
                    _ratio(_median(cell, "truncate_all"), o),
                )
                out.append(row)
            reps = nres.get("reps_note")
            if reps:
                out.append("     reps per strategy (k={}): {}".format(*reps))
            for s, chk in nres.get("checks", {}).items():
                if "error" in chk:
                    out.append("     check %-12s error: %s" % (s, chk["error"]))
                    continue
                bad = []
                if not chk["rows_ok"]:
                    bad.append("rows not back to seeded baseline " + ",".join(chk["rows_bad"]))
                if chk["ids_ok"] is False:
                    bad.append("ids not restarted to baseline " + ",".join(chk["ids_bad"]))
                out.append(
                    "     check %-12s %s"
                    % (s, "; ".join(bad) if bad else "ok (rows and ids back to baseline)")
                )
        for s, why in unavailable.items():
            out.append(f"     {s}: unavailable on {b}: {why}")
    return out


def write_tables(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for b, w in data.get("write", {}).items():
        out.append("")
        if "unavailable" in w:
            out.append("== {} write side: {} ==".format(b, w["unavailable"]))
            continue
        out.append(
            "== {} write side (N = {}, table {}): median ms, ratio vs untracked ==".format(
                b, w["n"], w["table"]
            )
        )
        targets = [t for t in ("untracked", "ours", "peer") if t in w["targets"]]
        out.append(
            "%-26s" % "workload"
            + "".join("%14s" % t for t in targets)
            + "".join("%12s" % (t + "/untr") for t in targets[1:])
            + "".join("%13s" % (t + " paired") for t in targets[1:])
        )
        for work, label in (
            ("multi", "%d rows, 1 INSERT" % w["multi_rows"]),
            ("single_tx", "%d INSERTs, 1 tx" % w["single_rows"]),
            ("single_auto", "%d INSERTs, autocommit" % w["single_rows"]),
        ):
            res = w["results"][work]
            row = "%-26s" % label + "".join("%14s" % _fmt_ms(res[t]["median_ms"]) for t in targets)
            row += "".join(
                "%12s" % _ratio(res[t]["median_ms"], res["untracked"]["median_ms"])
                for t in targets[1:]
            )
            row += "".join(
                "%13s" % ("%.2fx" % p if (p := res[t].get("paired_ratio")) is not None else "-")
                for t in targets[1:]
            )
            out.append(row)
        if "untracked" in w:
            out.append("     untracked: " + w["untracked"])
        out.append(
            "     x/untr: ratio of the medians; paired: median of the per-repetition ratios"
            " (the goals use it)"
        )
        for t, why in w.get("unavailable_targets", {}).items():
            out.append(f"     {t}: unavailable: {why}")
    return out


def suite_tables(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for b, s in data.get("suite", {}).items():
        out.append("")
        if "unavailable" in s:
            out.append("== {} suite: {} ==".format(b, s["unavailable"]))
            continue
        out.append(
            "== %s suite (%d tests over %d tables): whole-run wall time, median of runs =="
            % (b, s["tests"], s["tables"])
        )
        res = s["results"]
        floor = res.get("none", {}).get("median_s")
        peer_floor = res.get("none_peer_venv", {}).get("median_s")
        out.append(
            "%-16s%10s%6s%10s%11s" % ("strategy", "median s", "runs", "x floor", "rows+-seed")
        )
        for name, r in res.items():
            if "unavailable" in r:
                out.append("%-16s unavailable: %s" % (name, r["unavailable"]))
                continue
            if r.get("median_s") is None:
                out.append("%-16s failed: %s" % (name, r.get("failed", "")[:200]))
                continue
            base = peer_floor if name in ("peer", "none_peer_venv") and peer_floor else floor
            extra = " (vs its venv's floor)" if base is peer_floor and name == "peer" else ""
            if r.get("projected_from_tests"):
                extra = " projected: %.0f ms/test measured on %d tests (%.1f s)" % (
                    r["per_test_overhead_ms"],
                    r["projected_from_tests"],
                    r["measured_s"],
                )
            elif r.get("tests"):
                extra = " (%d tests only)" % r["tests"]
                base = None
            sa_floor = res.get("none_sa", {}).get("median_s")
            if name == "ours" and sa_floor:
                extra = " %s the floor with SQLAlchemy imported (none_sa)" % _ratio(
                    r["median_s"], sa_floor
                )
            out.append(
                "%-16s%10.2f%6d%10s%11s%s"
                % (
                    name,
                    r["median_s"],
                    r["n_runs"],
                    _ratio(r["median_s"], base),
                    r.get("rows_left_above_baseline", "-"),
                    extra,
                )
            )
    return out


def print_report(data: dict[str, Any], log: Any = print) -> None:
    import goals

    lines = reset_tables(data) + write_tables(data) + suite_tables(data)
    lines += goals.lines(data.get("goals", []))
    if data.get("notes"):
        lines.append("")
        lines += ["note: " + n for n in data["notes"]]
    for line in lines:
        log(line)


def write_json(data: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False, default=str)


def chart(data: dict[str, Any], path: str) -> str:
    """Cleanup time vs N per strategy (log-log), one panel per backend x k."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return (
            "chart skipped: matplotlib not installed (pip install matplotlib, or the `bench` extra)"
        )
    reset = data.get("reset", {})
    backends = [b for b in reset if reset[b].get("by_n")]
    if not backends:
        return "chart skipped: no reset results"
    ks = sorted({int(k) for b in backends for n in reset[b]["by_n"].values() for k in n["by_k"]})
    fig, axes = plt.subplots(
        len(backends), len(ks), figsize=(3.6 * len(ks), 3.2 * len(backends)), squeeze=False
    )
    styles = {
        "ours": ("tab:green", "o", "-"),
        "ours_never": ("tab:olive", "D", "-"),
        "peer": ("tab:red", "s", "-"),
        "truncate_all": ("tab:purple", "^", "--"),
        "delete_all": ("tab:orange", "v", "--"),
        "rollback": ("tab:gray", "x", ":"),
        "select1": ("black", ".", ":"),
        "select1_w": ("gray", ".", ":"),
    }
    for i, b in enumerate(backends):
        by_n = reset[b]["by_n"]
        ns = sorted(int(n) for n in by_n)
        for j, k in enumerate(ks):
            ax = axes[i][j]
            for s in ORDER:
                xs, ys = [], []
                for n in ns:
                    cell = by_n[str(n)]["by_k"].get(str(k), {})
                    m = _median(cell, s)
                    if m:
                        xs.append(n)
                        ys.append(m)
                if xs:
                    c, mk, ls = styles[s]
                    ax.plot(xs, ys, color=c, marker=mk, linestyle=ls, label=LABELS[s])
            ax.set_xscale("log")
            ax.set_xticks(ns, [str(n) for n in ns])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.set_title("%s, k = %d dirty tables" % (b, k), fontsize=9)
            ax.set_xlabel("tables in schema (N)", fontsize=8)
            if j == 0:
                ax.set_ylabel("reset time, median ms", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            ax.tick_params(labelsize=7)
    handles, labels = [], []
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "chart: " + path
