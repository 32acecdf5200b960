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
from sklearn.metrics import cohen_kappa_score

from flex_judge.analysis import paired as P
from flex_judge.analysis.runs import Run, RunError, json_safe, load_runs, protocol_deviations, swap_flags
from flex_models.args import HelpFormatter
from flex_tasks import benchmarks
from flex_tasks import metrics as M
from flex_tasks.protocol import TASKS
from flex_tasks.record import Record


class CompareError(RunError):
    """Runs that cannot be compared item by item."""


def task_kind(task: str) -> str:
    """"verdict" | "score" | "ranking": what the task's parser returns (its benchmark module says)."""
    return benchmarks.parser_of(TASKS[task]).kind


def verdict_label(rec: Record) -> str:
    """A pairwise verdict as a category label; a None verdict (tie/unparsed) -> 'none'."""
    return "none" if rec.pred is None else str(rec.pred)


# ---------------------------------------------------------------- pure statistics
def label_codes(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two raters' labels as integer codes over their joint label set (labels mix types, e.g.
    0/1 and 'none'; scikit-learn is several times faster on integer arrays)."""
    codes = {k: i for i, k in enumerate(dict.fromkeys(list(a) + list(b)))}
    return np.array([codes[x] for x in a], dtype=int), np.array([codes[y] for y in b], dtype=int)


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two raters' labels (scikit-learn's ``cohen_kappa_score``); NaN where it
    is undefined: no items, or both raters constant on the same label. Integer arrays (from
    :func:`label_codes`) are used as they are."""
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} vs {len(b)}")
    if len(a) == 0:
        return float("nan")
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype.kind == b.dtype.kind == "i"):
        a, b = label_codes(a, b)
    if np.unique(np.concatenate([a, b])).size == 1:
        return float("nan")  # p_e = 1 (sklearn warns and returns NaN)
    return float(cohen_kappa_score(a, b))


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
    return {(r.item, r.run): r for r in run.records(task)}


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


# ---------------------------------------------------------------- paired headline statistic
ACCURACY_TEST, BOOTSTRAP_TEST = "McNemar exact", "paired bootstrap"


def headline_stat(task: str, keys: list, recs: dict) -> dict:
    """One judge's headline metric of ``task`` (``TaskSpec.headline[0]``) as a statistic of item
    weights (``paired.Stat``) over the aligned records, computed the way the task's report does:

    - VL-RewardBench / MJ-Bench / GenAI-Bench accuracy: per run the mean over items, then the mean
      over runs; McNemar on each item's share of runs right;
    - MLLM-as-a-Judge pair: the items' majority verdict over runs, accuracy per dataset, mean
      over datasets (McNemar on the majority's correctness); score: Pearson per dataset and run
      (NaN -> 0), median over runs, mean over datasets; batch: mean normalised Levenshtein per
      dataset and run, worst run, mean over datasets (resampled within datasets);
    - audio: Pearson (LCC) of the items' mean prediction with the gold MOS (within test sets
      where the report stratifies by set).

    Returns {"metric", "higher_is_better", "stat", "correct" (per-item correctness for McNemar,
    None for a bootstrap-tested metric), "strata", "n_items"}.
    Each form is checked against the benchmark's own report in tests/test_paired.py."""
    spec = TASKS[task]
    metric, hib = spec.headline[0]
    items = list(dict.fromkeys(k[0] for k in keys))
    runs = sorted({k[1] for k in keys})
    pos_i = {it: i for i, it in enumerate(items)}
    pos_r = {r: j for j, r in enumerate(runs)}
    grid: list = [[None] * len(runs) for _ in items]
    for k in keys:
        grid[pos_i[k[0]]][pos_r[k[1]]] = recs[k]
    first = [next(r for r in row if r is not None) for row in grid]

    def matrix(fn):
        return np.array([[fn(r) if r is not None else np.nan for r in row] for row in grid], dtype=float)

    out = {"metric": metric, "higher_is_better": hib, "correct": None, "strata": None, "n_items": len(items)}
    form = benchmarks.parser_of(spec).headline  # the benchmark module declares the form
    if form == "runwise_accuracy":
        correct = matrix(lambda r: float(r.pred is not None and r.pred == r.gold))
        out["stat"] = lambda W: P.runwise_mean(W, correct)
        out["correct"] = P.nanmean_rows(correct)
        return out
    if form == "mos_pearson":
        pred = P.nanmean_rows(matrix(lambda r: float(r.pred)))
        gold = np.array([float(r.gold) for r in first])
        out["stat"] = lambda W: P.weighted_pearson(W, pred, gold)
        if spec.report_kwargs.get("per_set"):
            out["strata"] = np.array([str(r.grouped("set")) for r in first])
        return out
    ds = np.array([str(r.grouped("dataset")) for r in first])
    names = sorted(set(ds.tolist()))
    out["strata"] = ds
    member = {d: (ds == d).astype(float) for d in names}

    def dataset_mean(per_ds):  # per_ds(W, d) -> (B,): averaged over the datasets drawn
        def stat(W):
            vals = np.stack([np.where(W @ member[d] > 0, per_ds(W, d), np.nan) for d in names], axis=1)
            return P.nanmean_rows(vals)
        return stat

    if form == "dataset_majority_accuracy":
        gold = [r.gold for r in first]
        hit = np.array([float(M.sign_majority([r.pred for r in row if r is not None]) == g)
                        for row, g in zip(grid, gold)])
        out["stat"] = dataset_mean(lambda W, d: P.weighted_mean(W * member[d], hit))
        out["correct"] = hit
    elif form == "dataset_median_pearson":
        pred = matrix(lambda r: float(r.pred))
        gold = np.array([float(r.gold) for r in first])

        def median_pearson(W, d):
            rs = np.stack([P.weighted_pearson(W * member[d], pred[:, j], gold) for j in range(len(runs))], axis=1)
            return np.median(np.nan_to_num(rs, nan=0.0), axis=1)
        out["stat"] = dataset_mean(median_pearson)
    elif form == "dataset_worst_levenshtein":
        dist = matrix(lambda r: M.norm_levenshtein(str(r.pred), str(r.gold)))

        def worst_run(W, d):
            return P.nanmax_rows(np.stack([P.weighted_mean(W * member[d], dist[:, j]) for j in range(len(runs))], axis=1))
        out["stat"] = dataset_mean(worst_run)
    else:
        raise CompareError(f"task {task}: no paired statistic for headline form {form!r}")
    return out


def paired_test(fa: dict, fb: dict, iters: int, seed: int) -> dict:
    """A vs B on the headline: difference, paired bootstrap CI and the task's test (McNemar for
    accuracies, the bootstrap otherwise); ``p_holm`` and ``verdict`` are set by :func:`compare`."""
    bs = P.paired_bootstrap(fa["stat"], fb["stat"], fa["n_items"], iters=iters, seed=seed, strata=fa["strata"])
    out = {"metric": fa["metric"], "higher_is_better": fa["higher_is_better"], "a": bs["a"], "b": bs["b"],
           "diff": bs["diff"], "diff_ci95": bs["ci95"], "n_items": fa["n_items"], "n_resamples": bs["n_resamples"]}
    if fa["correct"] is not None:
        mc = P.mcnemar_exact(fa["correct"], fb["correct"])
        out.update(test=ACCURACY_TEST, p=mc["p"], a_better=mc["a_better"], b_better=mc["b_better"])
    else:
        out.update(test=BOOTSTRAP_TEST, p=bs["p"])
        if "note" in bs:
            out["note"] = bs["note"]
    return out


def paired_runs(run_a: Run, run_b: Run, task: str, iters: int = 1000,
                seed: int = M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """:func:`paired_test` of two runs' headline on ``task`` (no Holm: the caller corrects over
    its own family of tests). Raises RunError / CompareError when the runs have no samples or
    cover different (item, run) records."""
    keys, keyed = align([run_a, run_b], task, intersect=False, warn=None)
    fa, fb = (headline_stat(task, keys, recs) for recs in keyed)
    return paired_test(fa, fb, iters, seed)


def mark_ranks(board: dict, runs: list[Run], scales: Optional[dict] = None, iters: int = 1000,
               alpha: float = P.ALPHA) -> None:
    """The leaderboard's rank marks (flex_judge.analysis.leaderboard), backed by a paired test.
    In each column showing a task's headline metric (``TaskSpec.headline[0]``) the best run row
    gets ``rank_test``: :func:`paired_runs` of it against the next row on the same items
    (McNemar for accuracies, the paired bootstrap otherwise; differences in the section's
    ``scales`` units), Holm-adjusted over every column tested on the board; ``significant``
    (the row is marked 1st) only where the adjusted p < ``alpha``. Columns with fewer than two
    run rows, a tie, or runs without comparable samples get no mark (``board["rank_notes"]``
    says why)."""
    by_file = {str(r.results_file): r for r in runs}
    scale = scales or {}
    tested, notes = [], []
    for sec in board["sections"]:
        rows = [r for r in sec["rows"] if r["kind"] == "run"]
        for col in sec["columns"]:
            cells = [(row, row["cells"][col]) for row in rows if col in row["cells"]]
            for _, c in cells:
                c.pop("rank_test", None)
            cells = [(row, c) for row, c in cells if c.get("value") is not None and c.get("task") in TASKS
                     and c.get("metric") == TASKS[c["task"]].headline[0][0]]
            if len(cells) < 2:
                continue
            hib = TASKS[cells[0][1]["task"]].headline[0][1]
            cells.sort(key=lambda rc: rc[1]["value"], reverse=hib)
            (top, ct), (nxt, cn) = cells[0], cells[1]
            if ct["value"] == cn["value"]:
                notes.append(f"{sec['key']}/{col}: {top['label']} and {nxt['label']} tie: no rank mark")
                continue
            try:
                st = paired_runs(by_file[top["run"]], by_file[nxt["run"]], ct["task"], iters=iters)
            except RunError as e:
                notes.append(f"{sec['key']}/{col}: no paired test of {top['label']} vs {nxt['label']} ({e})")
                continue
            k = scale.get(sec["key"], 1.0)
            ct["rank_test"] = {"vs": nxt["label"], "metric": st["metric"], "test": st["test"], "p": st["p"],
                               "diff": st["diff"] * k, "diff_ci95": [v * k for v in st["diff_ci95"]],
                               **({"note": st["note"]} if "note" in st else {})}
            tested.append((sec["key"], col, top["label"], ct["rank_test"]))
    m = sum(1 for t in tested if math.isfinite(t[3]["p"]))
    for (key, col, label, rt), adj in zip(tested, P.holm([t[3]["p"] for t in tested])):
        rt["p_holm"] = adj
        rt["significant"] = bool(adj < alpha)
        verdict = "beats" if rt["significant"] else "is not significantly better than"
        test = (f"{rt['test']} p={rt['p']:.3g}, Holm over {m} columns p={adj:.3g}" if math.isfinite(rt["p"])
                else f"{rt['test']}: {rt.get('note', 'no p-value')}")
        notes.append(f"{key}/{col}: {label} {verdict} {rt['vs']} (difference {rt['diff']:.3f} "
                     f"[{rt['diff_ci95'][0]:.3f}, {rt['diff_ci95'][1]:.3f}], {test})")
    board["rank_notes"] = notes


def apply_holm(per_task: dict, alpha: float = P.ALPHA) -> None:
    """Holm-adjust each judge pair's p-values over the tasks compared, then the verdicts."""
    tasks = list(per_task)
    if not tasks:
        return
    for i in range(len(per_task[tasks[0]]["pairs"])):
        tests = [per_task[t]["pairs"][i]["paired"] for t in tasks]
        for pt, adj in zip(tests, P.holm([pt["p"] for pt in tests])):
            pt["p_holm"] = adj
            pt["verdict"] = P.verdict(pt["diff"], adj, pt["higher_is_better"], alpha)
            if pt["test"] == ACCURACY_TEST and pt["verdict"] in ("A > B", "B > A"):
                # the discordant items must lean the way the headline moved (they can differ
                # where the headline averages datasets or runs): otherwise no claim is made
                lean = np.sign(pt["a_better"] - pt["b_better"]) * (1 if pt["higher_is_better"] else -1)
                if lean != np.sign(pt["diff"]):
                    pt["verdict"] = P.NO_DIFFERENCE


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
        by_item.setdefault(r.item, []).append(r)
    same = total = items = 0
    for rs in by_item.values():
        plain = [r for r in rs if not flags[(r.item, r.run)] and r.ok]
        swapped = [r for r in rs if flags[(r.item, r.run)] and r.ok]
        if plain and swapped:
            items += 1
        for x, y in itertools.product(plain, swapped):
            total += 1
            same += verdict_label(x) == verdict_label(y)
    return {"rate": same / total if total else float("nan"), "pairs": total, "items": items}


def _pair_stats(kind: str, keys, ra: dict, rb: dict, top: int, iters: int, seed: int) -> dict:
    item_of = [k[0] for k in keys]
    out: dict = {"n": len(keys), "n_items": len(set(item_of))}
    both_ok = np.array([ra[k].ok and rb[k].ok for k in keys])
    out["n_both_parsed"] = int(both_ok.sum())
    if kind == "verdict":
        a = [verdict_label(ra[k]) for k in keys]
        b = [verdict_label(rb[k]) for k in keys]
        out["agreement"] = agreement(a, b)
        out["kappa"] = cohen_kappa(a, b)
        out["agreement_ci95"] = _item_ci(lambda idx: agreement([a[i] for i in idx], [b[i] for i in idx]),
                                         item_of, iters, seed)
        ca, cb = label_codes(a, b)
        out["kappa_ci95"] = _item_ci(lambda idx: cohen_kappa(ca[idx], cb[idx]), item_of, iters, seed)
        pa = [x for x, ok in zip(a, both_ok) if ok]
        pb = [y for y, ok in zip(b, both_ok) if ok]
        out["agreement_parsed"] = agreement(pa, pb)  # over records both judges parsed
        out["kappa_parsed"] = cohen_kappa(pa, pb)
        per_key = [float(x != y) for x, y in zip(a, b)]
        out["labels"] = {"a": a, "b": b}
    elif kind == "score":
        x = np.array([float(ra[k].pred) for k in keys])
        y = np.array([float(rb[k].pred) for k in keys])
        out["pearson"] = M.pearson(x, y)
        out["spearman"] = M.spearman(x, y)
        out["pearson_parsed"] = M.pearson(x[both_ok], y[both_ok])
        out["spearman_parsed"] = M.spearman(x[both_ok], y[both_ok])
        out["pearson_ci95"] = _item_ci(lambda idx: M.pearson(x[idx], y[idx]), item_of, iters, seed)
        per_key = list(np.abs(x - y))
        out["scores"] = {"a": x[both_ok].tolist(), "b": y[both_ok].tolist()}  # plotted: no fallback values
    else:
        a = [str(ra[k].pred) for k in keys]
        b = [str(rb[k].pred) for k in keys]
        out["exact_agreement"] = agreement(a, b)
        per_key = [M.norm_levenshtein(x, y) for x, y in zip(a, b)]
        out["mean_norm_levenshtein"] = float(np.mean(per_key)) if per_key else float("nan")
    by_item: dict = {}
    for it, v in zip(item_of, per_key):
        by_item.setdefault(it, []).append(v)
    ranked = sorted(((float(np.mean(v)), it) for it, v in by_item.items()), key=lambda t: (-t[0], str(t[1])))
    data_id = {k[0]: ra[k].data_id for k in keys}
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
        fails = sum(1 for r in aligned if not r.ok)
        headline = {}
        for metric, hib in spec.headline:
            headline[metric] = {"value": run.metric(task, metric), "ci95": run.metric(task, f"{metric}_ci95"),
                                "higher_is_better": hib}
        judges[run.label] = {
            "parse_failures": fails, "parse_failure_rate": fails / len(aligned) if aligned else float("nan"),
            "headline": headline, "position_consistency": position_consistency(run, task),
            "deviations": protocol_deviations(run, task)}
    forms = [headline_stat(task, keys, recs) for recs in keyed]
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(runs), 2):
        st = _pair_stats(kind, keys, keyed[i], keyed[j], top, iters, seed)
        pairs.append({"a": a.label, "b": b.label, **st, "paired": paired_test(forms[i], forms[j], iters, seed)})
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
    apply_holm(per_task)
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
    rows = [(t, p) for t in report["tasks"] for p in pt[t]["pairs"]]
    paths["paired_differences"] = plots.paired_differences(
        [f"{t.removeprefix('flex_')}:{p['paired']['metric']}{'' if p['paired']['higher_is_better'] else ' ↓'}"
         f" {p['a']} vs {p['b']}" for t, p in rows],
        [_num(p["paired"]["diff"]) for _, p in rows], [p["paired"]["diff_ci95"] for _, p in rows],
        [f"{p['paired'].get('verdict', 'n/a')} (p Holm {_p(p['paired'].get('p_holm'))})" for _, p in rows],
        out / "paired_differences.png")
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
    out += paired_markdown(report)
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


def paired_markdown(report: dict) -> list[str]:
    """The 'Is A better than B?' table: one row per task and judge pair."""
    pt = report["per_task"]
    out = ["", "## Is A better than B? (paired test on the same items)", "",
           f"Headline metric recomputed from the compared records; A − B with a paired bootstrap 95% CI (items "
           f"resampled, all runs of an item together); p: McNemar's exact test for accuracies, the paired bootstrap "
           f"for correlations and Levenshtein; Holm-adjusted over the {len(report['tasks'])} task(s) per judge pair; "
           f"verdict at 5% on the adjusted p (↓ = lower is better).", "",
           "| task | A vs B | metric | A | B | A − B [95% CI] | p (test) | p Holm | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for t in report["tasks"]:
        for p in pt[t]["pairs"]:
            s = p["paired"]
            metric = s["metric"] + ("" if s["higher_is_better"] else " ↓")
            test = "McNemar" if s["test"] == ACCURACY_TEST else "bootstrap" + (f"; {s['note']}" if s.get("note") else "")
            if s["test"] == ACCURACY_TEST:
                test += f", {s['a_better']}:{s['b_better']} discordant"
            out.append(f"| {t} | {p['a']} vs {p['b']} | {metric} | {_f(s['a'])} | {_f(s['b'])} | "
                       f"{_f(s['diff'])}{_ci(s['diff_ci95'])} | {_p(s['p'])} ({test}) | {_p(s.get('p_holm'))} | "
                       f"{s.get('verdict', 'n/a')} |")
    return out


def _p(v) -> str:
    v = _num(v)
    if v is None or not math.isfinite(v):
        return "n/a"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


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
    p = argparse.ArgumentParser(prog="flex-judge compare", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="one lmms-eval output (folder or <date>_results.json) per judge")
    p.add_argument("--out", help="write compare.md, compare.json and plots/*.png here (default: unset, print only)")
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
