"""`flex-judge leaderboard RUN_DIR...`: lmms-eval runs of the flex tasks -> the paper's tables.

Values and 95% CIs are read from each run's results file (``<metric>,none`` and
``<metric>_ci95,none``, computed by flex_tasks.reports), item and run counts from its
``flex_details`` (``Run.details``); nothing is recomputed here. The paper's
rows (``protocols.json`` ``paper_results_v4``) are printed as reference lines. A run whose
settings differ from the protocol (--limit, fewer runs, greedy decoding, other sampling, stops
or seeds) is flagged: its row gets a mark and the differences are listed under the table.

Outputs (``--out DIR``): leaderboard.md, leaderboard.csv (one row per cell), leaderboard.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Optional

from flex_judge.analysis.runs import Run, RunError, json_safe, load_runs, protocol_deviations
from flex_models.args import HelpFormatter
from flex_tasks.benchmarks import Column, Section, leaderboard_sections
from flex_tasks.protocol import protocols

# The tables, their columns and the paper-row keys: each benchmark module declares its own
# (flex_tasks.benchmarks: Benchmark.leaderboard); a key not in paper_results_v4 has no paper rows.
SECTIONS: tuple[Section, ...] = leaderboard_sections()


def _f(v) -> Optional[float]:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _ci(v) -> Optional[list]:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_f(x) is not None for x in v):
        return [float(v[0]), float(v[1])]
    return None


def _cell(run: Run, col: Column, metric: str, scale: float) -> Optional[dict]:
    if col.task not in run.tasks:
        return None
    v = _f(run.metric(col.task, metric))
    ci = _ci(run.metric(col.task, f"{metric}_ci95"))
    details = run.details(col.task)
    cell = {"value": None if v is None else v * scale, "ci95": None if ci is None else [x * scale for x in ci],
            "task": col.task, "metric": metric,
            "parse_failure_rate": _f(run.metric(col.task, "parse_failure_rate")),
            "n_items": details.get("n_items"), "n_runs": details.get("n_runs")}
    if col.second:
        cell["value2"] = _f(run.metric(col.task, col.second))
        cell["ci95_2"] = _ci(run.metric(col.task, f"{col.second}_ci95"))
    return cell


def _metric_for(run: Run, col: Column, as_released: bool) -> str:
    """The column's as-released metric when asked for and present in the run, else its protocol metric."""
    if as_released and col.as_released and run.metric(col.task, col.as_released) is not None:
        return col.as_released
    return col.metric


def _run_rows(run: Run, sec: Section, as_released: bool = False) -> list[dict]:
    variants = [("", None)] + ([("_majority", "acc_majority")] if sec.majority else [])
    rows = []
    for suffix, metric_override in variants:
        cells = {}
        for col in sec.columns:
            if not col.task:
                continue
            c = _cell(run, col, metric_override or _metric_for(run, col, as_released), sec.scale)
            if c is not None:
                cells[col.name] = c
        if not cells:
            continue
        if sec.mean_column:
            parts = [cells.get(c.name, {}).get("value") for c in sec.columns if c.task]
            if all(p is not None for p in parts):
                cells[sec.mean_column] = {"value": sum(parts) / len(parts), "ci95": None, "derived": "mean"}
        by_dev: dict = {}
        for task in dict.fromkeys(c["task"] for c in cells.values() if "task" in c):
            for d in protocol_deviations(run, task):
                by_dev.setdefault(d, []).append(task)
        deviations = [f"{d} ({', '.join(ts)})" for d, ts in sorted(by_dev.items())]
        rows.append({"kind": "run", "label": run.label + suffix, "run": str(run.results_file),
                     "cells": cells, "deviations": deviations, "flagged": bool(deviations)})
    return rows


def _paper_rows(sec: Section) -> list[dict]:
    table = protocols().get("paper_results_v4", {}).get(sec.key, {})
    names = table.get("columns", [])
    rows = []
    for label, values in table.items():
        if label == "columns":
            continue
        cells = {}
        for name, v in zip(names, values):
            if isinstance(v, list):
                cells[name] = {"value": v[0], "value2": v[1], "ci95": None}
            else:
                cells[name] = {"value": v, "ci95": None}
        rows.append({"kind": "paper", "label": f"{label} (paper)", "cells": cells, "deviations": [], "flagged": False})
    return rows


def build(runs: list[Run], with_paper: bool = True) -> dict:
    """The leaderboard as data: sections with run rows and paper rows, plus run metadata."""
    sections = []
    for sec in SECTIONS:
        run_rows = [r for run in runs for r in _run_rows(run, sec, as_released=with_paper)]
        if not run_rows:
            continue
        run_rows.sort(key=lambda r: r["flagged"])  # protocol-faithful rows first
        sections.append({"key": sec.key, "title": sec.title, "columns": [c.name for c in sec.columns],
                         "digits": 2 if sec.scale == 100.0 else 3,  # percentages: 2 decimals
                         "rows": run_rows + (_paper_rows(sec) if with_paper else []),
                         "metric_notes": _metric_notes(sec, run_rows, with_paper)})
    board = {"sections": sections, "runs": [r.metadata() for r in runs],
             "paper_notes": protocols().get("paper_results_v4", {}).get("notes", "")}
    mark_ranks(board, runs)
    return board


def mark_ranks(board: dict, runs: list[Run]) -> None:
    """Rank marks backed by a paired test (flex_judge.analysis.compare.mark_ranks)."""
    from flex_judge.analysis.compare import mark_ranks as paired_marks

    paired_marks(board, runs, scales={s.key: s.scale for s in SECTIONS})


def _metric_notes(sec: Section, rows: list[dict], with_paper: bool) -> list[str]:
    """Which metric each as-released column of the run rows shows, in words."""
    notes = []
    for col in sec.columns:
        if not col.as_released:
            continue
        used = {row["cells"][col.name]["metric"] for row in rows if col.name in row["cells"]}
        if col.as_released in used:
            notes.append(f"{col.name}: `{col.as_released}` (runs pooled as the released test/evaluate.py does, "
                         f"comparable with the paper rows; the protocol value is `{col.metric}` in the results)")
        if col.metric in used and with_paper:
            notes.append(f"{col.name}: `{col.metric}` for runs without `{col.as_released}` "
                         f"(the written protocol; not computed the way the paper rows were)")
        elif col.metric in used:
            notes.append(f"{col.name}: `{col.metric}` (the written protocol, per run)")
    return notes


# ---------------------------------------------------------------- rendering
def _fmt(v, digits) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _fmt_cell(cell: Optional[dict], digits: int) -> str:
    if not cell or cell.get("value") is None:
        return "—"
    s = _fmt(cell["value"], digits)
    if "value2" in cell:
        s += " / " + _fmt(cell.get("value2"), digits)
    if cell.get("ci95"):
        lo, hi = cell["ci95"]
        s += f" [{_fmt(lo, digits)}, {_fmt(hi, digits)}]"
    return s


def _ranked(cell: Optional[dict], digits: int) -> str:
    s = _fmt_cell(cell, digits)
    return f"**{s}** (1st)" if cell and (cell.get("rank_test") or {}).get("significant") else s


def to_markdown(board: dict) -> str:
    out = ["# Flex-Judge leaderboard", ""]
    out.append("Cells: value [95% bootstrap CI over items] (audio: LCC / SRCC [LCC CI]); "
               "`(paper)` rows are the paper's reported numbers; `†` marks a run that does not follow "
               "the paper's protocol (see the notes under each table).")
    for sec in board["sections"]:
        digits = sec.get("digits", 3)
        out += ["", f"## {sec['title']}", ""]
        out.append("| judge | " + " | ".join(sec["columns"]) + " | parse fail |")
        out.append("|---" * (len(sec["columns"]) + 2) + "|")
        notes = []
        for row in sec["rows"]:
            mark = " †" if row["flagged"] else ""
            rates = [c.get("parse_failure_rate") for c in row["cells"].values() if c.get("parse_failure_rate") is not None]
            pf = f"{100 * max(rates):.0f}%" if rates else ""
            out.append(f"| {row['label']}{mark} | " + " | ".join(_ranked(row["cells"].get(c), digits)
                                                                  for c in sec["columns"]) + f" | {pf} |")
            if row["flagged"]:
                notes.append(f"- † {row['label']}: " + "; ".join(row["deviations"]))
        if notes:
            out += ["", "Not the paper's protocol (not comparable to the paper rows):", *notes]
        if sec.get("metric_notes"):
            out += ["", "Metrics shown:", *(f"- {n}" for n in sec["metric_notes"])]
    if board.get("rank_notes"):
        out += ["", "## Rank marks", "", "**Bold (1st)**: the best run row of a headline column, marked only where a "
                "paired test on the same items (McNemar's exact test for accuracies, the paired bootstrap for "
                "correlations and Levenshtein; Holm over the columns tested) says it beats the next row at 5%.", "",
                *(f"- {n}" for n in board["rank_notes"])]
    out += ["", "## Runs", ""]
    for m in board["runs"]:
        data = "; ".join(f"{t}: {d.get('source')} {d.get('hub_id') or d.get('path', '')} "
                         f"{d.get('n_items')} items {str(d.get('items_sha256', ''))[:19]}"
                         for t, d in (m.get("data") or {}).items())
        out.append(f"- **{m['label']}**: model `{m['model']}` model_args `{m['model_args']}`; "
                   f"lmms-eval {m.get('lmms_eval_version') or 'unknown'}; flex-judge {m.get('flex_judge', 'unknown')}; "
                   f"data {data or 'unknown'}; date {m.get('date', '?')}; "
                   f"limit {m.get('limit')}; gen_kwargs {m.get('gen_kwargs')}; `{m['results_file']}`")
    if board.get("paper_notes"):
        out += ["", f"Paper rows note: {board['paper_notes']}"]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("section", "label", "kind", "flagged", "column", "value", "ci95_lo", "ci95_hi", "value2",
              "task", "metric", "parse_failure_rate", "n_items", "n_runs", "deviations", "run")


def to_csv_rows(board: dict) -> list[dict]:
    rows = []
    for sec in board["sections"]:
        for row in sec["rows"]:
            for col in sec["columns"]:
                c = row["cells"].get(col)
                if not c:
                    continue
                ci = c.get("ci95") or [None, None]
                rows.append({"section": sec["key"], "label": row["label"], "kind": row["kind"],
                             "flagged": row["flagged"], "column": col, "value": c.get("value"),
                             "ci95_lo": ci[0], "ci95_hi": ci[1], "value2": c.get("value2"),
                             "task": c.get("task", ""), "metric": c.get("metric", ""),
                             "parse_failure_rate": c.get("parse_failure_rate"), "n_items": c.get("n_items"),
                             "n_runs": c.get("n_runs"), "deviations": "; ".join(row["deviations"]),
                             "run": row.get("run", "")})
    return rows


def write(board: dict, out: Path, formats=("md", "csv", "json")) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    if "md" in formats:
        paths["md"] = out / "leaderboard.md"
        paths["md"].write_text(to_markdown(board))
    if "csv" in formats:
        paths["csv"] = out / "leaderboard.csv"
        with open(paths["csv"], "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(to_csv_rows(board))
    if "json" in formats:
        paths["json"] = out / "leaderboard.json"
        paths["json"].write_text(json.dumps(json_safe(json.loads(json.dumps(board, default=str))), indent=1,
                                            allow_nan=False))
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flex-judge leaderboard", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="lmms-eval --output_path folders, model sub-folders "
                   "or <date>_results.json files (one row per results file)")
    p.add_argument("--out", help="write leaderboard.md/.csv/.json here (default: print Markdown only)")
    p.add_argument("--labels", help="comma-separated row names, one per results file (default: model:checkpoint)")
    p.add_argument("--formats", default="md,csv,json", help="which files to write (default md,csv,json)")
    p.add_argument("--no-paper", action="store_true", help="leave out the paper's reference rows")
    p.add_argument("--exclude-flagged", action="store_true",
                   help="drop runs that do not follow the paper's protocol instead of flagging them")
    a = p.parse_args(argv)
    formats = tuple(f.strip() for f in a.formats.split(",") if f.strip())
    bad = [f for f in formats if f not in ("md", "csv", "json")]
    if bad:
        p.error(f"--formats: unknown {bad}; allowed: md, csv, json")
    try:
        runs = load_runs(a.runs, a.labels.split(",") if a.labels else None)
    except RunError as e:
        print(f"flex-judge leaderboard: {e}", file=sys.stderr)
        return 2
    runs = [r for r in runs if r.duplicate_of is None]  # one row per distinct results (warned in load_runs)
    board = build(runs, with_paper=not a.no_paper)
    if a.exclude_flagged:
        for sec in board["sections"]:
            dropped = [r["label"] for r in sec["rows"] if r["flagged"]]
            sec["rows"] = [r for r in sec["rows"] if not r["flagged"]]
            if dropped:
                print(f"excluded (not the paper's protocol) from {sec['key']}: {', '.join(dropped)}", file=sys.stderr)
        mark_ranks(board, runs)  # against the rows that are left
    print(to_markdown(board))
    if a.out:
        for kind, path in write(board, Path(a.out), formats).items():
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
