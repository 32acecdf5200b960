"""Metric primitives against scipy / hand computation."""
import math

import numpy as np
import pytest
from scipy import stats

from flex_tasks import metrics as M


@pytest.mark.parametrize("seed", range(5))
def test_pearson_spearman_match_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=40)
    y = x * 0.3 + rng.normal(size=40)
    y[::5] = y[0]  # ties for spearman
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_correlation_undefined_is_nan():
    assert math.isnan(M.pearson([1.0], [2.0]))  # single item
    assert math.isnan(M.pearson([3, 3, 3], [1, 2, 3]))  # constant prediction
    assert math.isnan(M.spearman([1, 2, 3], [5, 5, 5]))
    assert math.isnan(M.pearson([], []))
    assert M.nan_to_zero(M.pearson([3, 3], [1, 2])) == 0.0


def test_mse_accuracy():
    assert M.mse([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert M.accuracy([True, False, True, True]) == 0.75
    assert math.isnan(M.accuracy([]))
    with pytest.raises(ValueError):
        M.mse([1, 2], [1])


@pytest.mark.parametrize("a,b,d", [("ABCD", "ABCD", 0), ("ABCD", "ABDC", 2), ("ABC", "", 3), ("", "", 0),
                                   ("CDAB", "ABCD", 4), ("kitten", "sitting", 3), ("BA", "ABC", 2)])
def test_levenshtein(a, b, d):
    assert M.levenshtein(a, b) == d
    assert M.levenshtein(b, a) == d
    assert M.norm_levenshtein(a, b) == (d / max(len(a), len(b)) if max(len(a), len(b)) else 0.0)


def test_majority_vote_first_seen_breaks_ties():
    assert M.majority_vote(["b", "a", "a", "b", "c"]) == "b"
    assert M.majority_vote(["none", "leftvote", "leftvote"]) == "leftvote"
    with pytest.raises(ValueError):
        M.majority_vote([])


@pytest.mark.parametrize("labels,out", [(["A", "A", "B"], "A"), (["A", "B", "C"], "C"), (["B", "C", "C"], "B"), (["C", "C", "C"], "C")])
def test_sign_majority(labels, out):
    assert M.sign_majority(labels) == out


def test_bootstrap_ci_seeded_and_sane():
    x = np.r_[np.ones(30), np.zeros(70)]
    stat = lambda idx: float(x[idx].mean())
    a = M.bootstrap_ci(stat, len(x), iters=500, seed=7)
    b = M.bootstrap_ci(stat, len(x), iters=500, seed=7)
    c = M.bootstrap_ci(stat, len(x), iters=500, seed=8)
    assert a == b and a != c
    assert a[0] < 0.3 < a[1]
    # normal-approx check of the width
    se = math.sqrt(0.3 * 0.7 / 100)
    assert (a[1] - a[0]) == pytest.approx(2 * 1.96 * se, rel=0.25)


def test_bootstrap_ci_stratified_keeps_strata_sizes():
    strata = ["a"] * 3 + ["b"] * 7
    seen = []
    M.bootstrap_ci(lambda idx: seen.append(sorted(idx)) or 0.0, 10, strata=strata, iters=20, seed=1)
    for idx in seen:
        assert sum(i < 3 for i in idx) == 3 and sum(i >= 3 for i in idx) == 7


def test_bootstrap_ci_degenerate():
    assert all(math.isnan(v) for v in M.bootstrap_ci(lambda idx: 1.0, 0))
    assert all(math.isnan(v) for v in M.bootstrap_ci(lambda idx: float("nan"), 5, iters=10))
    assert M.bootstrap_ci(lambda idx: 0.5, 1, iters=10) == [0.5, 0.5]
