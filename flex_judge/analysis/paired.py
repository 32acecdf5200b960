"""Paired significance of two judges on the same items: pure functions on arrays.

``flex-judge compare`` asks, per task and judge pair, "is judge A better than judge B on this
benchmark, or is it noise?". Both judges were scored on the same items, so the question is
answered with paired statistics, never by comparing two separate confidence intervals:

- **Paired bootstrap** (:func:`paired_bootstrap`): items are resampled with replacement (all
  runs of an item move together; within strata where the headline is stratified) and the SAME
  resample is applied to both judges; the difference of the headline metric over the resamples
  gives a percentile 95 % CI and a two-sided p-value (twice the smaller tail share of
  differences at or beyond 0, counted with the +1 of a Monte Carlo p-value, capped at 1).
  Used for correlations and Levenshtein distances.
- **McNemar's exact test** (:func:`mcnemar_exact`) for accuracies: the binomial test
  (``scipy.stats.binomtest``, p = 1/2) on the discordant items, those one judge got right and
  the other wrong. Where an item has several runs its correctness is the share of runs right;
  an item is discordant when the two shares differ and counts for the judge with the higher
  share (the sign test, which is McNemar's exact test when every share is 0 or 1).
- **Holm's step-down correction** (:func:`holm`) over the tasks compared.

A statistic is written as ``stat(W) -> (B,)`` over a weight matrix ``W`` of shape (B, n): row b
holds how often each item was drawn in resample b (a row of ones is the data itself). Every
headline here is a function of the multiset of items, so weights give exactly the value of the
resampled data, and B resamples cost a few matrix products (vectorised, no Python loop per
resample). The headline statistics of the flex tasks are built from these parts by
``flex_judge.analysis.compare.headline_stat``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from scipy.stats import binomtest

Stat = Callable[[np.ndarray], np.ndarray]
ALPHA = 0.05
NO_DIFFERENCE = "no difference at 5 %"
CHUNK = 256  # resamples per weight matrix (bounds memory on large benchmarks)
# Fewest items for a bootstrap p-value. On a handful of items the percentile bootstrap's tails
# are not trustworthy: on 3 items whose difference is the same in every resample it gives
# p = 2/(B+1) = 0.002, where an exact paired (sign-flip) test cannot go below 2^(1-3) = 0.25.
# From 10 items an exact paired test can reach 2^(1-10) ~ 0.002, the bootstrap's own floor at
# B = 1000, so from there the two can agree.
MIN_BOOTSTRAP_ITEMS = 10


# ---------------------------------------------------------------- resampling
def resample_weights(n: int, size: int, rng: np.random.Generator,
                     strata: Optional[np.ndarray] = None) -> np.ndarray:
    """(size, n) draw counts of ``size`` bootstrap resamples of ``n`` items (each stratum
    resampled to its own size when ``strata`` is given)."""
    if strata is None:
        groups = [np.arange(n)]
    else:
        strata = np.asarray(strata)
        if strata.shape != (n,):
            raise ValueError(f"strata: {strata.shape[0] if strata.ndim else 0} labels for {n} items")
        groups = [np.flatnonzero(strata == s) for s in dict.fromkeys(strata.tolist())]
    W = np.zeros((size, n))
    for g in groups:
        m = len(g)
        draws = rng.integers(0, m, size=(size, m)) + (np.arange(size) * m)[:, None]  # row b's draws -> b*m + j
        W[:, g] = np.bincount(draws.ravel(), minlength=size * m).reshape(size, m)
    return W


# ---------------------------------------------------------------- weighted statistics (rows of W)
def weighted_mean(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mean of ``x`` (n,) under each row of weights, NaN entries of ``x`` left out; NaN for a
    row with no weight on a finite entry."""
    x = np.asarray(x, dtype=float)
    ok = np.isfinite(x)
    num = W @ np.where(ok, x, 0.0)
    den = W @ ok.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def weighted_pearson(W: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of (x, y) under each row of weights (= r of the resampled data), pairs with a
    NaN left out; NaN where fewer than two distinct points carry weight or a side is constant."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    Wk = W * ok
    # centred on the overall mean first (keeps sum w x^2 - s m^2 well conditioned)
    cx = np.where(ok, x - (x[ok].mean() if ok.any() else 0.0), 0.0)
    cy = np.where(ok, y - (y[ok].mean() if ok.any() else 0.0), 0.0)
    s = Wk.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = (Wk @ cx) / s, (Wk @ cy) / s
        rx, ry = Wk @ (cx * cx), Wk @ (cy * cy)
        sxx, syy = rx - s * mx ** 2, ry - s * my ** 2
        sxy = Wk @ (cx * cy) - s * mx * my
        # a side constant on the resample: its centred sum of squares is 0 up to rounding
        defined = (s > 0) & (sxx > 1e-12 * rx) & (syy > 1e-12 * ry) & (sxx > 0) & (syy > 0)
        r = np.where(defined, sxy / np.sqrt(np.where(defined, sxx * syy, 1.0)), np.nan)
    return np.clip(r, -1.0, 1.0)


def runwise_mean(W: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Mean over runs of each run's mean over the (resampled) items: ``mat`` is items x runs
    with NaN where an item has no record in a run (the reports' ``runwise_mean``)."""
    mat = np.asarray(mat, dtype=float)
    per_run = np.stack([weighted_mean(W, mat[:, j]) for j in range(mat.shape[1])], axis=1)
    return _nanreduce(np.nanmean, per_run)


def _nanreduce(fn, a: np.ndarray) -> np.ndarray:
    """``fn`` over axis 1 ignoring NaN; NaN for an all-NaN row (without numpy's warning)."""
    out = np.full(a.shape[0], np.nan)
    some = np.isfinite(a).any(axis=1)
    if some.any():
        out[some] = fn(a[some], axis=1)
    return out


def nanmean_rows(a: np.ndarray) -> np.ndarray:
    return _nanreduce(np.nanmean, a)


def nanmax_rows(a: np.ndarray) -> np.ndarray:
    return _nanreduce(np.nanmax, a)


# ---------------------------------------------------------------- tests
def paired_bootstrap(stat_a: Stat, stat_b: Stat, n: int, *, iters: int = 1000, seed: int = 1234,
                     strata: Optional[Sequence] = None, alpha: float = ALPHA) -> dict:
    """Difference ``stat_a - stat_b`` on the data, its percentile CI over ``iters`` paired
    resamples of the ``n`` items (the same resample for both judges) and the two-sided
    bootstrap p-value of "no difference" (NaN below ``MIN_BOOTSTRAP_ITEMS`` items, with a
    ``note``). Resamples where either statistic is undefined are left out (``n_resamples``
    says how many counted)."""
    ones = np.ones((1, n))
    a0, b0 = float(stat_a(ones)[0]), float(stat_b(ones)[0])
    out = {"a": a0, "b": b0, "diff": a0 - b0, "ci95": [float("nan"), float("nan")], "p": float("nan"),
           "n_resamples": 0, "method": "paired bootstrap"}
    if n == 0 or iters <= 0 or not np.isfinite(a0 - b0):
        return out
    rng = np.random.default_rng(seed)
    st = None if strata is None else np.asarray(strata)
    diffs = []
    for start in range(0, iters, CHUNK):
        W = resample_weights(n, min(CHUNK, iters - start), rng, st)
        diffs.append(stat_a(W) - stat_b(W))
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    out["n_resamples"] = int(d.size)
    if d.size == 0:
        return out
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    out["ci95"] = [float(lo), float(hi)]
    if n < MIN_BOOTSTRAP_ITEMS:
        out["note"] = f"{n} items: no bootstrap p-value below {MIN_BOOTSTRAP_ITEMS} items"
    else:
        out["p"] = bootstrap_p(d)
    return out


def bootstrap_p(diffs: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap differences: twice the smaller share
    of resamples at or beyond 0 on either side, as (1 + count) / (1 + B), capped at 1. All
    differences exactly 0 (identical judges) -> 1."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return float("nan")
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    return float(min(1.0, 2 * (1 + tail) / (1 + d.size)))


def mcnemar_exact(correct_a: Sequence[float], correct_b: Sequence[float]) -> dict:
    """McNemar's exact test of two judges' per-item correctness (1 right, 0 wrong; a share of
    runs right where an item has several runs): the two-sided binomial test of the discordant
    items, ``a_better`` of ``a_better + b_better`` at p = 1/2. No discordant item -> p = 1."""
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {a.shape} vs {b.shape}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    a_better, b_better = int((d > 0).sum()), int((d < 0).sum())
    k = a_better + b_better
    p = 1.0 if k == 0 else float(binomtest(a_better, k, 0.5, alternative="two-sided").pvalue)
    return {"a_better": a_better, "b_better": b_better, "p": p, "method": "McNemar exact"}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given). NaN entries (no test) stay NaN
    and do not count towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adj
    return out.tolist()


def verdict(diff: float, p_adjusted: float, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """'A > B' / 'B > A' (A better / B better on the metric's own direction) where the adjusted
    p-value is below ``alpha``, else 'no difference at 5 %'; 'n/a' without a test."""
    if not (np.isfinite(diff) and np.isfinite(p_adjusted)):
        return "n/a"
    if p_adjusted >= alpha or diff == 0:
        return NO_DIFFERENCE
    return "A > B" if (diff > 0) == bool(higher_is_better) else "B > A"
