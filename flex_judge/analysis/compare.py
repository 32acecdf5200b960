"""`flex-judge compare RUN_A RUN_B ...`: per-item comparison of judges that ran the same flex tasks.

Judges can be any lmms-eval model (``flex``, ``qwen2_5_vl``, ...): per-item data comes from the
samples jsonl, where every flex task logs one record per (item, run) (``flex_item``, ``flex_run``).
Records are aligned on (item, run); judges that ran different tasks or items are an error unless
``--intersect`` (then the common part is compared and a warning says what was left out).

Per task and judge pair: verdict agreement and Cohen's kappa (pairwise tasks), Pearson / Spearman
between scores (score tasks), exact-match rate and normalised Levenshtein between rankings (batch),
the items they disagree on most. Per judge: parse-failure rate, headline metric with its 95% CI
(from the results file), position consistency where both presentation orders were run
(MJ-Bench original + swapped runs; VL-RewardBench's random per-run order).

Outputs (``--out DIR``): compare.md, compare.json and plots/ (agreement heatmap, score scatter,
per-benchmark bars with CIs).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from flex_judge.analysis.runs import Run, RunError, json_safe, load_runs, protocol_deviations, swap_flags
from flex_tasks import benchmarks
from flex_tasks import metrics as M
from flex_tasks.protocol import TASKS


class CompareError(RunError):
    """Runs that cannot be compared item by item."""


def task_kind(task: str) -> str:
    """"verdict" | "score" | "ranking": what the task's parser returns (its benchmark module says)."""
    return benchmarks.parser_of(TASKS[task]).kind


def verdict_label(rec: dict) -> str:
    """A pairwise verdict as a category label; a None verdict (tie/unparsed) -> 'none'."""
    return "none" if rec["pred"] is None else str(rec["pred"])


# ---------------------------------------------------------------- pure statistics
def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two raters' labels: (p_o - p_e) / (1 - p_e); NaN when p_e == 1
    (both raters constant on the same label) or no items."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} vs {len(b)}")
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    pe = sum((a.count(k) / n) * (b.count(k) / n) for k in labels)
    if pe >= 1.0:
        return float("nan")
    return float((po - pe) / (1 - pe))


def agreement(a, b) -> float:
    return M.accuracy([x == y for x, y in zip(a, b)])


def _item_ci(stat, item_of_key: list, iters: int, seed: int) -> list:
    """Bootstrap CI of ``stat(key_indices)`` resampling items (all runs of an item together)."""
    items = list(dict.fromkeys(item_of_key))
    groups = {it: [] for it in items}
    for i, it in enumerate(item_of_key):
        groups[it].append(i)
    blocks = [np.array(groups[it]) for it in items]
    return M.bootstrap_ci(lambda idx: stat(np.concatenate([blocks[i] for i in idx])), len(items),
                          iters=iters, seed=seed)


# ---------------------------------------------------------------- alignment
def _keyed(run: Run, task: str) -> dict:
    return {(r["item"], int(r["run"])): r for r in run.records(task)}


def choose_tasks(runs: list[Run], tasks: Optional[list[str]], intersect: bool, warn) -> list[str]:
    if tasks:
        for t in tasks:
            if t not in TASKS:
                raise CompareError(f"--tasks: {t!r} is not a flex task; allowed: {', '.join(sorted(TASKS))}")
            missing = [r.label for r in runs if t not in r.tasks]
            if missing:
                raise CompareError(f"task {t} is not in run(s) {', '.join(missing)}")
        return list(tasks)
    common = [t for t in runs[0].tasks if all(t in r.tasks for r in runs[1:])]
    union = list(dict.fromkeys(t for r in runs for t in r.tasks))
    if not common:
        raise CompareError("the runs share no flex task: " + "; ".join(f"{r.label}: {', '.join(r.tasks)}" for r in runs))
    if len(common) < len(union):
        only = "; ".join(f"{r.label} only: {', '.join(t for t in r.tasks if t not in common)}"
                         for r in runs if any(t not in common for t in r.tasks))
        if not intersect:
            raise CompareError(f"the runs ran different flex tasks ({only}); pass --tasks to pick common ones "
                               f"or --intersect to compare the {len(common)} common tasks")
        warn(f"comparing the {len(common)} common tasks; left out: {only}")
    return common


def align(runs: list[Run], task: str, intersect: bool, warn) -> tuple[list, list[dict]]:
    """Sorted common (item, run) keys and each judge's records keyed by them."""
    keyed = [_keyed(r, task) for r in runs]
    sets = [set(k) for k in keyed]
    common = set.intersection(*sets)
    if any(s != common for s in sets):
        items = [{k[0] for k in s} for s in sets]
        detail = "; ".join(f"{r.label}: {len(s)} records over {len(i)} items, {len(s - common)} not in every run"
                           f" (e.g. {sorted(s - common)[:3]})" for r, s, i in zip(runs, sets, items) if s - common)
        if not intersect:
            raise CompareError(f"task {task}: the runs cover different (item, run) records ({detail}); "
                               f"pass --intersect to compare the {len(common)} common records")
        if not common:
            raise CompareError(f"task {task}: the runs have no (item, run) record in common")
        warn(f"task {task}: comparing the {len(common)} common (item, run) records; {detail}")
    keys = sorted(common, key=lambda k: (str(type(k[0])), k[0], k[1]))  # item keys: row positions
    return keys, keyed


# ---------------------------------------------------------------- per task
def position_consistency(run: Run, task: str) -> Optional[dict]:
    """Share of (original-order run, swapped-order run) pairs of one item with the same verdict
    (verdicts mapped back to the original order), over pairs where both outputs parsed."""
    if TASKS[task].order is None:
        return None
    recs = run.records(task)
    flags = swap_flags(task, recs)
    by_item: dict = {}
    for r in recs:
        by_item.setdefault(r["item"], []).append(r)
    same = total = items = 0
    for rs in by_item.values():
        plain = [r for r in rs if not flags[(r["item"], int(r["run"]))] and r.get("ok")]
        swapped = [r for r in rs if flags[(r["item"], int(r["run"]))] and r.get("ok")]
        if plain and swapped:
            items += 1
        for x, y in itertools.product(plain, swapped):
            total += 1
            same += verdict_label(x) == verdict_label(y)
    return {"rate": same / total if total else float("nan"), "pairs": total, "items": items}


def _pair_stats(kind: str, keys, ra: dict, rb: dict, top: int, iters: int, seed: int) -> dict:
    item_of = [k[0] for k in keys]
    out: dict = {"n": len(keys), "n_items": len(set(item_of))}
    both_ok = np.array([bool(ra[k].get("ok")) and bool(rb[k].get("ok")) for k in keys])
    out["n_both_parsed"] = int(both_ok.sum())
    if kind == "verdict":
        a = [verdict_label(ra[k]) for k in keys]
        b = [verdict_label(rb[k]) for k in keys]
        out["agreement"] = agreement(a, b)
        out["kappa"] = cohen_kappa(a, b)
        out["agreement_ci95"] = _item_ci(lambda idx: agreement([a[i] for i in idx], [b[i] for i in idx]),
                                         item_of, iters, seed)
        out["kappa_ci95"] = _item_ci(lambda idx: cohen_kappa([a[i] for i in idx], [b[i] for i in idx]),
                                     item_of, iters, seed)
        pa = [x for x, ok in zip(a, both_ok) if ok]
        pb = [y for y, ok in zip(b, both_ok) if ok]
        out["agreement_parsed"] = agreement(pa, pb)  # over records both judges parsed
        out["kappa_parsed"] = cohen_kappa(pa, pb)
        per_key = [float(x != y) for x, y in zip(a, b)]
        out["labels"] = {"a": a, "b": b}
    elif kind == "score":
        x = np.array([float(ra[k]["pred"]) for k in keys])
        y = np.array([float(rb[k]["pred"]) for k in keys])
        out["pearson"] = M.pearson(x, y)
        out["spearman"] = M.spearman(x, y)
        out["pearson_parsed"] = M.pearson(x[both_ok], y[both_ok])
        out["spearman_parsed"] = M.spearman(x[both_ok], y[both_ok])
        out["pearson_ci95"] = _item_ci(lambda idx: M.pearson(x[idx], y[idx]), item_of, iters, seed)
        per_key = list(np.abs(x - y))
        out["scores"] = {"a": x[both_ok].tolist(), "b": y[both_ok].tolist()}  # plotted: no fallback values
    else:
        a = [str(ra[k]["pred"]) for k in keys]
        b = [str(rb[k]["pred"]) for k in keys]
        out["exact_agreement"] = agreement(a, b)
        per_key = [M.norm_levenshtein(x, y) for x, y in zip(a, b)]
        out["mean_norm_levenshtein"] = float(np.mean(per_key)) if per_key else float("nan")
    by_item: dict = {}
    for it, v in zip(item_of, per_key):
        by_item.setdefault(it, []).append(v)
    ranked = sorted(((float(np.mean(v)), it) for it, v in by_item.items()), key=lambda t: (-t[0], str(t[1])))
    data_id = {k[0]: ra[k].get("data_id") for k in keys}
    out["top_disagreements"] = [{"item": it, "data_id": data_id[it], "disagreement": v} for v, it in ranked[:top] if v > 0]
    return out


def compare_task(runs: list[Run], task: str, intersect: bool, warn, top: int = 10,
                 iters: int = 1000, seed: int = M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    spec = TASKS[task]
    kind = task_kind(task)
    keys, keyed = align(runs, task, intersect, warn)
    judges = {}
    for run, recs in zip(runs, keyed):
        aligned = [recs[k] for k in keys]
        fails = sum(1 for r in aligned if not r.get("ok", True))
        headline = {}
        for metric, hib in spec.headline:
            headline[metric] = {"value": run.metric(task, metric), "ci95": run.metric(task, f"{metric}_ci95"),
                                "higher_is_better": hib}
        judges[run.label] = {
            "parse_failures": fails, "parse_failure_rate": fails / len(aligned) if aligned else float("nan"),
            "headline": headline, "position_consistency": position_consistency(run, task),
            "deviations": protocol_deviations(run, task)}
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(runs), 2):
        st = _pair_stats(kind, keys, keyed[i], keyed[j], top, iters, seed)
        pairs.append({"a": a.label, "b": b.label, **st})
    return {"kind": kind, "n_records": len(keys), "n_items": len({k[0] for k in keys}), "judges": judges, "pairs": pairs}


def compare(runs: list[Run], tasks: Optional[list[str]] = None, intersect: bool = False, top: int = 10,
            iters: int = 1000) -> dict:
    if len(runs) < 2:
        raise CompareError(f"compare needs at least two runs, got {len(runs)}")
    found: list[str] = []

    def warn(msg):
        found.append(msg)
        warnings.warn(msg, stacklevel=3)

    chosen = choose_tasks(runs, tasks, intersect, warn)
    per_task = {t: compare_task(runs, t, intersect, warn, top=top, iters=iters) for t in chosen}
    return {"judges": [r.metadata() for r in runs], "tasks": chosen, "warnings": found, "per_task": per_task}


# ---------------------------------------------------------------- report
def _f(v, d=3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "—"
    return "n/a" if not math.isfinite(v) else f"{v:.{d}f}"


def _ci(ci, d=3) -> str:
    return f" [{_f(ci[0], d)}, {_f(ci[1], d)}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else ""


def write_plots(report: dict, out: Path) -> dict[str, Path]:
    from flex_judge.analysis import plots

    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    pt = report["per_task"]
    verdict = [t for t in report["tasks"] if pt[t]["kind"] == "verdict"]
    pair_names = [f"{p['a']} vs {p['b']}" for p in next(iter(pt.values()))["pairs"]]
    if verdict:
        vals = [[p["agreement_parsed"] for p in pt[t]["pairs"]] for t in verdict]
        notes = [[f"κ={_f(p['kappa_parsed'], 2)} n={p['n_both_parsed']}" for p in pt[t]["pairs"]] for t in verdict]
        paths["agreement_heatmap"] = plots.agreement_heatmap(
            verdict, pair_names, vals, out / "agreement_heatmap.png", notes=notes,
            title="verdict agreement over records both judges parsed (κ = Cohen's kappa)")
    score = [t for t in report["tasks"] if pt[t]["kind"] == "score"]
    first = report["judges"][0]["label"], report["judges"][1]["label"]
    panels = [(t, pt[t]["pairs"][0]["scores"]["a"], pt[t]["pairs"][0]["scores"]["b"]) for t in score]
    paths["score_scatter"] = plots.score_scatter(panels, first[0], first[1], out / "score_scatter.png")
    groups, values, cis, lower = [], [], [], []
    labels = [j["label"] for j in report["judges"]]
    for t in report["tasks"]:
        for metric in pt[t]["judges"][labels[0]]["headline"]:
            groups.append(f"{t.removeprefix('flex_')}:{metric}")
            hs = [pt[t]["judges"][lab]["headline"][metric] for lab in labels]
            values.append([_num(h["value"]) for h in hs])
            cis.append([h["ci95"] if isinstance(h["ci95"], list) else None for h in hs])
            lower.append(not hs[0]["higher_is_better"])
    paths["benchmark_bars"] = plots.benchmark_bars(groups, labels, values, cis, out / "benchmark_bars.png",
                                                   lower_is_better=lower)
    return paths


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def to_markdown(report: dict, plot_paths: Optional[dict] = None, base: Optional[Path] = None) -> str:
    pt = report["per_task"]
    labels = [j["label"] for j in report["judges"]]
    out = ["# Judge comparison", ""]
    for j in report["judges"]:
        out.append(f"- **{j['label']}**: model `{j['model']}`, model_args `{j['model_args']}`, "
                   f"gen_kwargs {j.get('gen_kwargs')}, limit {j.get('limit')}; `{j['results_file']}`")
    for w in report["warnings"]:
        out.append(f"\n> warning: {w}")
    out += ["", "## Per judge (headline metrics from the results files, 95% CI; parse failures over compared records)", "",
            "| task | judge | headline | parse fail | position consistency | protocol |", "|---|---|---|---|---|---|"]
    for t in report["tasks"]:
        for lab in labels:
            j = pt[t]["judges"][lab]
            head = "; ".join(f"{m} {_f(h['value'])}{_ci(h['ci95'])}" for m, h in j["headline"].items())
            pc = j["position_consistency"]
            pcs = f"{_f(pc['rate'])} ({pc['pairs']} pairs, {pc['items']} items)" if pc else "—"
            prot = "paper" if not j["deviations"] else "differs: " + "; ".join(j["deviations"])
            out.append(f"| {t} | {lab} | {head} | {_f(100 * j['parse_failure_rate'], 1)}% | {pcs} | {prot} |")
    sections = {"verdict": ("Pairwise verdicts", "| task | judges | records (items) | agreement [95% CI] | Cohen's kappa [95% CI] | both parsed |"),
                "score": ("Scores", "| task | judges | records (items) | Pearson [95% CI] | Spearman | Pearson / Spearman (both parsed) |"),
                "ranking": ("Rankings (batch)", "| task | judges | records (items) | exact agreement | mean norm. Levenshtein |")}
    for kind, (title, header) in sections.items():
        tasks = [t for t in report["tasks"] if pt[t]["kind"] == kind]
        if not tasks:
            continue
        out += ["", f"## {title}", "", header, "|---" * header.count("|") + "|"][:-1]
        out.append("|---" * (header.count("|") - 1) + "|")
        for t in tasks:
            for p in pt[t]["pairs"]:
                who = f"{p['a']} vs {p['b']}"
                n = f"{p['n']} ({p['n_items']})"
                if kind == "verdict":
                    cells = [f"{_f(p['agreement'])}{_ci(p['agreement_ci95'])}", f"{_f(p['kappa'])}{_ci(p['kappa_ci95'])}",
                             f"{p['n_both_parsed']}: agreement {_f(p['agreement_parsed'])}, κ {_f(p['kappa_parsed'])}"]
                elif kind == "score":
                    cells = [f"{_f(p['pearson'])}{_ci(p['pearson_ci95'])}", _f(p["spearman"]),
                             f"{_f(p['pearson_parsed'])} / {_f(p['spearman_parsed'])} (n={p['n_both_parsed']})"]
                else:
                    cells = [_f(p["exact_agreement"]), _f(p["mean_norm_levenshtein"])]
                out.append(f"| {t} | {who} | {n} | " + " | ".join(cells) + " |")
    out += ["", "## Where they disagree most (item = row position, with the data's id; share of runs with different verdicts, "
            "mean |score difference| or mean ranking distance)", ""]
    for t in report["tasks"]:
        for p in pt[t]["pairs"]:
            top = ", ".join(f"`{d['item']}`{_id(d)} ({_f(d['disagreement'], 2)})" for d in p["top_disagreements"]) or "none"
            out.append(f"- {t}, {p['a']} vs {p['b']}: {top}")
    if plot_paths:
        out += ["", "## Plots", ""]
        for name, path in plot_paths.items():
            rel = Path(path).relative_to(base) if base else Path(path)
            out.append(f"![{name}]({rel.as_posix()})")
    return "\n".join(out) + "\n"


def _id(d: dict) -> str:
    """' (id X)' when the item's data id says more than its row position."""
    return f" (id {d['data_id']})" if d.get("data_id") not in (None, str(d["item"])) else ""


def _for_json(report: dict) -> dict:
    """The report without the per-record label/score lists (kept in memory for plots), NaN as null."""
    slim = json_safe(json.loads(json.dumps(report, default=str)))
    for t in slim["per_task"].values():
        for p in t["pairs"]:
            p.pop("labels", None)
            p.pop("scores", None)
    return slim


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flex-judge compare", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="one lmms-eval output (folder or <date>_results.json) per judge")
    p.add_argument("--out", help="write compare.md, compare.json and plots/*.png here")
    p.add_argument("--labels", help="comma-separated judge names, one per run (default: model:checkpoint)")
    p.add_argument("--tasks", help="comma-separated flex tasks to compare (default: all, which must match)")
    p.add_argument("--intersect", action="store_true",
                   help="compare only the common tasks / (item, run) records instead of failing, with a warning")
    p.add_argument("--top", type=int, default=10, help="items listed per task in 'disagree most' (default 10)")
    p.add_argument("--bootstrap-iters", type=int, default=1000, help="bootstrap resamples for agreement CIs")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    a = p.parse_args(argv)
    try:
        runs = load_runs(a.runs, a.labels.split(",") if a.labels else None, one_per_path=True)
        tasks = [t.strip() for t in a.tasks.split(",") if t.strip()] if a.tasks else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = compare(runs, tasks, intersect=a.intersect, top=a.top, iters=a.bootstrap_iters)
    except RunError as e:
        print(f"flex-judge compare: {e}", file=sys.stderr)
        return 2
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    plot_paths = None
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        if not a.no_plots:
            plot_paths = write_plots(report, out / "plots")
        (out / "compare.json").write_text(json.dumps(_for_json(report), indent=1, allow_nan=False))
        (out / "compare.md").write_text(to_markdown(report, plot_paths, base=out))
        print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}" + (f" and {len(plot_paths)} plots" if plot_paths else ""),
              file=sys.stderr)
    print(to_markdown(report, plot_paths, base=Path(a.out) if a.out else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
