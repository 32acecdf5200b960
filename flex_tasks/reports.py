"""Benchmark reports: per-(item, run) records -> the benchmark's corpus metrics.

Pure functions. Each report returns a flat dict: the task's metrics (the names in its
``TaskSpec.metric_names()``, lmms-eval's printed rows) and the bookkeeping
``protocol.DETAIL_KEYS`` (item / run counts, parse failures, bootstrap seed and iterations, and
``breakdown``: per run / dataset / category / set detail), which lands in the results file's
``flex_details``. Headline metrics get a seeded percentile bootstrap CI over items
(``<metric>_ci95`` = [lo, hi]); resampling keeps all runs of an item together.
Parse failures are counted over records (one record = one model output).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from flex_tasks import metrics as M

NAN = float("nan")


def _grid(records: list[dict]) -> tuple[list[str], list[int], list[list[Optional[dict]]]]:
    items = list(dict.fromkeys(r["item"] for r in records))
    runs = sorted({int(r["run"]) for r in records})
    pos_i = {k: i for i, k in enumerate(items)}
    pos_r = {k: j for j, k in enumerate(runs)}
    grid: list[list[Optional[dict]]] = [[None] * len(runs) for _ in items]
    for r in records:
        grid[pos_i[r["item"]]][pos_r[int(r["run"])]] = r
    return items, runs, grid


def _first(row: list[Optional[dict]]) -> dict:
    return next(r for r in row if r is not None)


def _matrix(grid, fn: Callable[[dict], float]) -> np.ndarray:
    return np.array([[fn(r) if r is not None else NAN for r in row] for row in grid], dtype=float)


def _common(records, items, runs, iters, seed) -> dict:
    fails = sum(1 for r in records if not r.get("ok", True))
    return {
        "n_items": len(items),
        "n_runs": len(runs),
        "parse_failures": fails,
        "parse_failure_rate": fails / len(records) if records else NAN,
        "bootstrap_seed": seed,
        "bootstrap_iters": iters,
    }


def _runwise_mean(mat: np.ndarray, idx: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean over runs of the per-run mean over items ``idx`` (optionally masked)."""
    sub = mat[idx]
    if mask is not None:
        sub = np.where(mask[idx], sub, np.nan)
    with np.errstate(all="ignore"), _quiet():
        per_run = np.nanmean(sub, axis=0)
        return float(np.nanmean(per_run)) if np.isfinite(per_run).any() else NAN


class _quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def _ci(stat, n, iters, seed, strata=None) -> list[float]:
    return M.bootstrap_ci(stat, n, strata=strata, iters=iters, seed=seed)


# ---------------------------------------------------------------- VL-RewardBench
VLRB_CATEGORIES = ("general", "hallucination", "reasoning")


def vl_rewardbench(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    items, runs, grid = _grid(records)
    correct = _matrix(grid, lambda r: float(r["pred"] is not None and r["pred"] == r["gold"]))
    cats = np.array([_first(row)["category"] for row in grid])

    def overall(idx):
        return _runwise_mean(correct, idx)

    def macro(idx):
        per_run = []
        with _quiet():
            for j in range(len(runs)):
                accs = [np.nanmean(correct[idx][cats[idx] == c, j]) for c in VLRB_CATEGORIES if (cats[idx] == c).any()]
                per_run.append(np.mean(accs) if accs else NAN)
            return float(np.nanmean(per_run)) if per_run else NAN

    all_idx = np.arange(len(items))
    out = {"overall_acc": overall(all_idx), "macro_acc": macro(all_idx)}
    official = vlrb_official(grid, cats)
    out["overall_acc_official"], out["macro_acc_official"] = official["overall"], official["macro"]
    for c in VLRB_CATEGORIES:
        out[f"{c}_acc"] = _runwise_mean(correct, all_idx, np.broadcast_to((cats == c)[:, None], correct.shape)) if (cats == c).any() else NAN
    out["overall_acc_ci95"] = _ci(overall, len(items), iters, seed)
    out["macro_acc_ci95"] = _ci(macro, len(items), iters, seed)
    out.update(_common(records, items, runs, iters, seed))
    with _quiet():
        out["breakdown"] = {
            "per_run_overall_acc": [float(v) for v in np.nanmean(correct, axis=0)],
            "category_counts": {c: int((cats == c).sum()) for c in VLRB_CATEGORIES},
            "ties": sum(1 for r in records if r.get("ok") and r["pred"] is None),
            "official_scorer": official,
        }
    return out


def vlrb_official(grid, cats) -> dict:
    """VL-RewardBench's own scorer (upstream ``cal.py``): per item, the verdict held by more
    than half of its runs ('agree' = the human-preferred response, 'reject' = the other one,
    no choice = a tie or an unparsed output); items without such a majority and items whose
    majority made no choice are left out. Accuracy = agree items / (agree + reject items),
    per category, overall (pooled) and macro (mean of the three categories)."""
    agree: dict = {c: 0 for c in VLRB_CATEGORIES}
    decided: dict = {c: 0 for c in VLRB_CATEGORIES}
    for row, cat in zip(grid, cats):
        recs = [r for r in row if r is not None]
        n_agree = sum(1 for r in recs if r["pred"] is not None and r["pred"] == r["gold"])
        n_reject = sum(1 for r in recs if r["pred"] is not None and r["pred"] != r["gold"])
        if n_agree > len(recs) / 2:
            agree[cat] += 1
            decided[cat] += 1
        elif n_reject > len(recs) / 2:
            decided[cat] += 1
    per_cat = {c: agree[c] / decided[c] if decided[c] else NAN for c in VLRB_CATEGORIES}
    total = sum(decided.values())
    present = [per_cat[c] for c in VLRB_CATEGORIES if decided[c]]
    return {"overall": sum(agree.values()) / total if total else NAN,
            "macro": float(np.mean(present)) if present else NAN,
            "per_category": per_cat, "items_counted": total}


# ---------------------------------------------------------------- MJ-Bench
def mj_bench(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Per run: 'w. tie' = accuracy over all items (a tie prediction is wrong unless the gold
    is a tie); 'w.o. tie' = accuracy over items where neither prediction nor gold is a tie.
    Headline = mean over runs (original order, swapped order)."""
    items, runs, grid = _grid(records)
    correct = _matrix(grid, lambda r: float(r["pred"] == r["gold"]))
    untied = _matrix(grid, lambda r: float(r["pred"] != 2 and r["gold"] != 2)) == 1.0

    def w_tie(idx):
        return _runwise_mean(correct, idx)

    def wo_tie(idx):
        return _runwise_mean(correct, idx, untied)

    all_idx = np.arange(len(items))
    out = {"acc_w_tie": w_tie(all_idx), "acc_wo_tie": wo_tie(all_idx)}
    out["acc_w_tie_ci95"] = _ci(w_tie, len(items), iters, seed)
    out["acc_wo_tie_ci95"] = _ci(wo_tie, len(items), iters, seed)
    out.update(_common(records, items, runs, iters, seed))
    with _quiet():
        out["breakdown"] = {
            "per_run_acc_w_tie": [float(v) for v in np.nanmean(correct, axis=0)],
            "per_run_acc_wo_tie": [float(v) for v in np.nanmean(np.where(untied, correct, np.nan), axis=0)],
            "tie_predictions": sum(1 for r in records if r["pred"] == 2),
            "gold_ties": sum(1 for row in grid if _first(row)["gold"] == 2),
        }
    return out


# ---------------------------------------------------------------- GenAI-Bench
def genai_bench(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    items, runs, grid = _grid(records)
    correct = _matrix(grid, lambda r: float(r["pred"] == r["gold"]))
    maj_correct = np.array(
        [float(M.majority_vote([r["pred"] for r in row if r is not None]) == _first(row)["gold"]) for row in grid]
    )

    def mean_acc(idx):
        return _runwise_mean(correct, idx)

    def maj_acc(idx):
        return float(maj_correct[idx].mean()) if len(idx) else NAN

    all_idx = np.arange(len(items))
    out = {"acc_mean": mean_acc(all_idx), "acc_majority": maj_acc(all_idx)}
    out["acc_mean_ci95"] = _ci(mean_acc, len(items), iters, seed)
    out["acc_majority_ci95"] = _ci(maj_acc, len(items), iters, seed)
    out.update(_common(records, items, runs, iters, seed))
    with _quiet():
        out["breakdown"] = {"per_run_acc": [float(v) for v in np.nanmean(correct, axis=0)]}
    return out


# ---------------------------------------------------------------- MLLM-as-a-Judge
def _by_dataset(grid) -> tuple[np.ndarray, list[str]]:
    ds = np.array([_first(row)["dataset"] for row in grid])
    return ds, sorted(set(ds.tolist()))


def _per_dataset(idx, ds, names, value) -> dict:
    """{dataset: value(item indices of that dataset in idx)}; value returns None to leave one out."""
    out = {}
    for name in names:
        sel = idx[ds[idx] == name]
        v = value(sel) if len(sel) else None
        if v is not None:
            out[name] = float(v)
    return out


def _mean_over_datasets(per_ds):
    """The MLLM-as-a-Judge headline: per-dataset values averaged over datasets (NaN if none)."""
    def stat(idx):
        v = per_ds(idx)
        return float(np.mean(list(v.values()))) if v else NAN
    return stat


def mllm_pair(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Majority over runs (A=-1, B=+1, C=0 summed) per item; accuracy per original dataset,
    averaged over datasets. 'w.o. tie' keeps items whose human label is not C (a dataset
    without such items is left out of that average)."""
    items, runs, grid = _grid(records)
    ds, names = _by_dataset(grid)
    gold = np.array([_first(row)["gold"] for row in grid])
    maj = np.array([M.sign_majority([r["pred"] for r in row if r is not None]) for row in grid])
    hit = (maj == gold).astype(float)

    def acc(sel):
        return hit[sel].mean() if len(sel) else None

    def per_ds(idx, with_tie):
        return _per_dataset(idx, ds, names, acc if with_tie else (lambda sel: acc(sel[gold[sel] != "C"])))

    w_tie = _mean_over_datasets(lambda idx: per_ds(idx, True))
    wo_tie = _mean_over_datasets(lambda idx: per_ds(idx, False))

    all_idx = np.arange(len(items))
    out = {"acc_w_tie": w_tie(all_idx), "acc_wo_tie": wo_tie(all_idx)}
    out["acc_w_tie_ci95"] = _ci(w_tie, len(items), iters, seed, strata=ds)
    out["acc_wo_tie_ci95"] = _ci(wo_tie, len(items), iters, seed, strata=ds)
    out.update(_common(records, items, runs, iters, seed))
    out["breakdown"] = {"per_dataset_w_tie": per_ds(all_idx, True), "per_dataset_wo_tie": per_ds(all_idx, False)}
    return out


def mllm_score(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Pearson(pred, human) per original dataset per run (unparsable pred = -1, NaN -> 0),
    median over runs, mean over datasets. ``pearson_as_released``: the same with run k's
    Pearson taken over runs 1..k pooled, as the released evaluation script computes it
    (docs/divergences.md)."""
    items, runs, grid = _grid(records)
    ds, names = _by_dataset(grid)
    pred = _matrix(grid, lambda r: float(r["pred"]))
    gold = np.array([float(_first(row)["gold"]) for row in grid])

    def median_pearson(sel):
        rs = []
        for j in range(len(runs)):
            ok = ~np.isnan(pred[sel, j])
            rs.append(M.nan_to_zero(M.pearson(pred[sel, j][ok], gold[sel][ok])))
        return np.median(rs)

    def per_ds(idx):
        return _per_dataset(idx, ds, names, median_pearson)

    def pooled_median_pearson(sel):
        # released test/evaluate.py: prediction lists are never reset between runs, so "run k"
        # is Pearson over runs 1..k pooled; then the median of those values
        rs = []
        for j in range(len(runs)):
            p, g = pred[sel, : j + 1].T.ravel(), np.tile(gold[sel], j + 1)
            ok = ~np.isnan(p)
            rs.append(M.nan_to_zero(M.pearson(p[ok], g[ok])))
        return np.median(rs)

    stat = _mean_over_datasets(per_ds)
    as_released = _mean_over_datasets(lambda idx: _per_dataset(idx, ds, names, pooled_median_pearson))

    all_idx = np.arange(len(items))
    out = {"pearson": stat(all_idx), "pearson_ci95": _ci(stat, len(items), iters, seed, strata=ds),
           "pearson_as_released": as_released(all_idx)}
    out.update(_common(records, items, runs, iters, seed))
    out["breakdown"] = {"per_dataset_pearson": per_ds(all_idx),
                        "per_dataset_pearson_as_released": _per_dataset(all_idx, ds, names, pooled_median_pearson)}
    return out


def mllm_batch(records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """Normalised Levenshtein(pred ranking, human ranking) per item; mean per dataset per
    run; worst (max) over runs; mean over datasets. Lower is better.
    ``levenshtein_as_released``: run k's mean taken over runs 1..k pooled, as the released
    evaluation script computes it (docs/divergences.md)."""
    items, runs, grid = _grid(records)
    ds, names = _by_dataset(grid)
    dist = _matrix(grid, lambda r: M.norm_levenshtein(r["pred"], r["gold"]))

    def worst_run(sel):
        with _quiet():
            return np.nanmax(np.nanmean(dist[sel], axis=0))

    def per_ds(idx):
        return _per_dataset(idx, ds, names, worst_run)

    def pooled_worst(sel):
        # released test/evaluate.py: "run k" is the mean distance over runs 1..k pooled
        with _quiet():
            return max(np.nanmean(dist[sel, : j + 1]) for j in range(len(runs)))

    stat = _mean_over_datasets(per_ds)
    as_released = _mean_over_datasets(lambda idx: _per_dataset(idx, ds, names, pooled_worst))

    all_idx = np.arange(len(items))
    out = {"levenshtein": stat(all_idx), "levenshtein_ci95": _ci(stat, len(items), iters, seed, strata=ds),
           "levenshtein_as_released": as_released(all_idx)}
    out.update(_common(records, items, runs, iters, seed))
    out["breakdown"] = {"per_dataset_levenshtein": per_ds(all_idx),
                        "per_dataset_levenshtein_as_released": _per_dataset(all_idx, ds, names, pooled_worst)}
    return out


# ---------------------------------------------------------------- audio (MOS / similarity)
def _corr_block(pred, gold) -> dict:
    return {"lcc": M.pearson(pred, gold), "srcc": M.spearman(pred, gold), "mse": M.mse(pred, gold)}


def mos(
    records,
    *,
    system_level: bool = False,
    per_set: tuple[str, ...] = (),
    prefix: str = "",
    iters=M.DEFAULT_BOOTSTRAP_ITERS,
    seed=M.DEFAULT_BOOTSTRAP_SEED,
) -> dict:
    """Utterance-level LCC/SRCC/MSE (pooled over sets; per set in ``breakdown.per_set``) and, with
    ``system_level``, the same between each system's mean prediction and its system MOS
    (records carry ``system`` and ``system_gt``; systems without a GT are left out).
    Several runs of one item are averaged first."""
    items, runs, grid = _grid(records)
    with _quiet():
        pred = np.nanmean(_matrix(grid, lambda r: float(r["pred"])), axis=1)
    gold = np.array([float(_first(row)["gold"]) for row in grid])
    out: dict = {}

    def utt(metric):
        return lambda idx: _corr_block(pred[idx], gold[idx])[metric]

    base = _corr_block(pred, gold)
    strata, by_set = None, {}
    if per_set:
        strata = np.array([_first(row)["set"] for row in grid])
        by_set = {s: {m: float(v) for m, v in _corr_block(pred[strata == s], gold[strata == s]).items()}
                  for s in per_set}
    for m in ("lcc", "srcc", "mse"):
        out[f"{prefix}{m}"] = base[m]
        out[f"{prefix}{m}_ci95"] = _ci(utt(m), len(items), iters, seed, strata=strata)

    if system_level:
        systems = np.array([str(_first(row)["system"]) for row in grid])
        sys_gt = np.array([float(_first(row).get("system_gt", NAN)) for row in grid])
        known = sorted({s for s, g in zip(systems, sys_gt) if np.isfinite(g)})
        code = {s: i for i, s in enumerate(known)}
        sys_idx = np.array([code.get(s, -1) for s in systems])
        gt_of = np.zeros(len(known))
        for s, g in zip(systems, sys_gt):
            if s in code:
                gt_of[code[s]] = g

        def sys_block(idx):
            idx = idx[sys_idx[idx] >= 0]
            counts = np.bincount(sys_idx[idx], minlength=len(known))
            sums = np.bincount(sys_idx[idx], weights=pred[idx], minlength=len(known))
            present = counts > 0
            return _corr_block(sums[present] / counts[present], gt_of[present])

        sb = sys_block(np.arange(len(items)))
        for m in ("lcc", "srcc", "mse"):
            out[f"sys_{m}"] = sb[m]
            out[f"sys_{m}_ci95"] = _ci(lambda idx, m=m: sys_block(idx)[m], len(items), iters, seed)
    out.update(_common(records, items, runs, iters, seed))
    out["breakdown"] = {"fallbacks_by_rule": _count_how(records)}
    if per_set:
        out["breakdown"]["per_set"] = by_set
    if system_level:
        out["breakdown"]["n_systems"] = len(known)
        out["breakdown"]["systems_without_gt"] = sorted(set(systems.tolist()) - set(known))
    return out


def _count_how(records) -> dict:
    counts: dict = {}
    for r in records:
        if not r.get("ok", True):
            counts[r.get("how", "fallback")] = counts.get(r.get("how", "fallback"), 0) + 1
    return counts
