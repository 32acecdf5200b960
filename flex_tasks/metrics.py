"""Corpus metrics as pure functions over lists/arrays (no lmms-eval, no I/O).

Conventions: correlations return NaN when undefined (fewer than two points or a constant
input); callers decide how to treat NaN (MLLM-as-a-Judge maps it to 0, as the paper does).
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
from scipy.stats import rankdata

DEFAULT_BOOTSTRAP_ITERS = 1000
DEFAULT_BOOTSTRAP_SEED = 1234


def _arrays(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"length mismatch: {x.shape} vs {y.shape}")
    return x, y


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r (LCC); NaN if n < 2 or either side is constant."""
    x, y = _arrays(x, y)
    if x.size < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    if denom == 0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip((dx * dy).sum() / denom, -1.0, 1.0))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (SRCC): Pearson on average ranks (ties share their mean rank)."""
    x, y = _arrays(x, y)
    if x.size < 2:
        return float("nan")
    return pearson(rankdata(x), rankdata(y))


def mse(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = _arrays(x, y)
    return float(np.mean((x - y) ** 2)) if x.size else float("nan")


def accuracy(correct: Sequence[bool]) -> float:
    c = np.asarray(correct, dtype=float)
    return float(c.mean()) if c.size else float("nan")


def nan_to_zero(v: float) -> float:
    return 0.0 if v is None or np.isnan(v) else float(v)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute; unit costs)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def norm_levenshtein(pred: str, gold: str) -> float:
    """Levenshtein(pred, gold) / max(len): 0 = identical ranking, 1 = nothing in common.
    Two empty strings -> 0."""
    m = max(len(pred), len(gold))
    return levenshtein(pred, gold) / m if m else 0.0


def majority_vote(labels: Sequence[Hashable]) -> Hashable:
    """Most frequent label; among equally frequent labels the one seen first wins."""
    if not labels:
        raise ValueError("majority_vote of an empty list")
    return Counter(labels).most_common(1)[0][0]


_SIGN = {"A": -1, "B": 1, "C": 0}


def sign_majority(labels: Sequence[str]) -> str:
    """MLLM-as-a-Judge pair majority: A=-1, B=+1, C=0 summed; <0 -> A, >0 -> B, 0 -> C."""
    s = sum(_SIGN[label] for label in labels)
    return "A" if s < 0 else "B" if s > 0 else "C"


def bootstrap_ci(
    stat: Callable[[np.ndarray], float],
    n: int,
    *,
    strata: Optional[Sequence[Hashable]] = None,
    iters: int = DEFAULT_BOOTSTRAP_ITERS,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    alpha: float = 0.05,
) -> list[float]:
    """Percentile bootstrap CI of ``stat(indices)`` over ``n`` items resampled with
    replacement (within each stratum when ``strata`` is given). Seeded: the same inputs
    give the same interval. NaN resamples are ignored; all-NaN -> [nan, nan]."""
    if n == 0 or iters <= 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    if strata is None:
        groups = [np.arange(n)]
    else:
        strata = list(strata)
        keys = list(dict.fromkeys(strata))
        groups = [np.array([i for i, s in enumerate(strata) if s == k]) for k in keys]
    values = np.empty(iters)
    for b in range(iters):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        values[b] = stat(idx)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return [float(lo), float(hi)]
