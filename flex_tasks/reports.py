"""Shared report machinery: per-(item, run) records -> a benchmark's corpus metrics.

Each benchmark's own report lives in its module (``flex_tasks.benchmarks.<name>``, the
``report`` hook); this module holds what they share: the item x run grid, the bootstrap CI, the
bookkeeping every report returns, and the MOS / similarity report of the audio benchmarks.
Pure functions over :class:`flex_tasks.record.Record` lists. Each report returns a flat dict: the task's metrics (the names in its
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
from flex_tasks.record import Record

NAN = float("nan")


def record_grid(records: list[Record]) -> tuple[list[str], list[int], list[list[Optional[Record]]]]:
    items = list(dict.fromkeys(r.item for r in records))
    runs = sorted({r.run for r in records})
    pos_i = {k: i for i, k in enumerate(items)}
    pos_r = {k: j for j, k in enumerate(runs)}
    grid: list[list[Optional[Record]]] = [[None] * len(runs) for _ in items]
    for r in records:
        grid[pos_i[r.item]][pos_r[r.run]] = r
    return items, runs, grid


def first_record(row: list[Optional[Record]]) -> Record:
    return next(r for r in row if r is not None)


def item_run_matrix(grid, fn: Callable[[Record], float]) -> np.ndarray:
    return np.array([[fn(r) if r is not None else NAN for r in row] for row in grid], dtype=float)


def common_details(records, items, runs, iters, seed) -> dict:
    fails = sum(1 for r in records if not r.ok)
    return {
        "n_items": len(items),
        "n_runs": len(runs),
        "parse_failures": fails,
        "parse_failure_rate": fails / len(records) if records else NAN,
        "bootstrap_seed": seed,
        "bootstrap_iters": iters,
    }


def runwise_mean(mat: np.ndarray, idx: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean over runs of the per-run mean over items ``idx`` (optionally masked)."""
    sub = mat[idx]
    if mask is not None:
        sub = np.where(mask[idx], sub, np.nan)
    with np.errstate(all="ignore"), quiet():
        per_run = np.nanmean(sub, axis=0)
        return float(np.nanmean(per_run)) if np.isfinite(per_run).any() else NAN


class quiet:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def bootstrap_ci(stat, n, iters, seed, strata=None) -> list[float]:
    return M.bootstrap_ci(stat, n, strata=strata, iters=iters, seed=seed)


# ---------------------------------------------------------------- audio (MOS / similarity)
def corr_block(pred, gold) -> dict:
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
    items, runs, grid = record_grid(records)
    with quiet():
        pred = np.nanmean(item_run_matrix(grid, lambda r: float(r.pred)), axis=1)
    gold = np.array([float(first_record(row).gold) for row in grid])
    out: dict = {}

    def utt(metric):
        return lambda idx: corr_block(pred[idx], gold[idx])[metric]

    base = corr_block(pred, gold)
    strata, by_set = None, {}
    if per_set:
        strata = np.array([first_record(row).grouped("set") for row in grid])
        by_set = {s: {m: float(v) for m, v in corr_block(pred[strata == s], gold[strata == s]).items()}
                  for s in per_set}
    for m in ("lcc", "srcc", "mse"):
        out[f"{prefix}{m}"] = base[m]
        out[f"{prefix}{m}_ci95"] = bootstrap_ci(utt(m), len(items), iters, seed, strata=strata)

    if system_level:
        systems = np.array([str(first_record(row).grouped("system")) for row in grid])
        sys_gt = np.array([float(first_record(row).group.get("system_gt", NAN)) for row in grid])
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
            return corr_block(sums[present] / counts[present], gt_of[present])

        sb = sys_block(np.arange(len(items)))
        for m in ("lcc", "srcc", "mse"):
            out[f"sys_{m}"] = sb[m]
            out[f"sys_{m}_ci95"] = bootstrap_ci(lambda idx, m=m: sys_block(idx)[m], len(items), iters, seed)
    out.update(common_details(records, items, runs, iters, seed))
    out["breakdown"] = {"fallbacks_by_rule": count_how(records)}
    if per_set:
        out["breakdown"]["per_set"] = by_set
    if system_level:
        out["breakdown"]["n_systems"] = len(known)
        out["breakdown"]["systems_without_gt"] = sorted(set(systems.tolist()) - set(known))
    return out


def count_how(records) -> dict:
    counts: dict = {}
    for r in records:
        if not r.ok:
            counts[r.how] = counts.get(r.how, 0) + 1
    return counts


def mos_report(spec, records, *, iters=M.DEFAULT_BOOTSTRAP_ITERS, seed=M.DEFAULT_BOOTSTRAP_SEED) -> dict:
    """The audio benchmarks' ``report`` hook: :func:`mos` with the task's ``report_kwargs``."""
    return mos(records, iters=iters, seed=seed, **spec.report_kwargs)
