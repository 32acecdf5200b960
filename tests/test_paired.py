"""Paired significance (flex_judge.analysis.paired, compare's 'Is A better than B?'): checked
against independent computations on constructed data where the answer is known — scipy's
binomtest and an exact enumeration for McNemar, a direct implementation of Holm's definition,
scipy's pearsonr on explicitly resampled data for the weighted statistics, each benchmark's own
report (flex_tasks.benchmarks) for the headline forms, and bootstrap CI coverage on data with a
known difference. statsmodels is not installed in the pinned environment, so Holm is checked
against its definition rather than statsmodels.multipletests."""
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, pearsonr

from flex_judge.analysis import compare as C
from flex_judge.analysis import paired as P
from flex_judge.analysis.runs import load_runs
from flex_tasks import benchmarks
from flex_tasks.protocol import TASKS
from flex_tasks.record import Record


# ---------------------------------------------------------------- McNemar
def _exact_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial p at 1/2 by enumeration: the probability of every outcome no more
    likely than the one seen."""
    probs = [math.comb(n, i) / 2 ** n for i in range(n + 1)]
    return min(1.0, sum(p for p in probs if p <= probs[k] * (1 + 1e-12)))


@pytest.mark.parametrize("n10,n01,n11,n00", [(9, 1, 30, 10), (3, 3, 5, 5), (0, 6, 2, 2), (12, 5, 0, 40), (1, 0, 9, 9)])
def test_mcnemar_is_the_exact_binomial_test_on_discordant_items(n10, n01, n11, n00):
    a = [1] * n10 + [0] * n01 + [1] * n11 + [0] * n00
    b = [0] * n10 + [1] * n01 + [1] * n11 + [0] * n00
    perm = np.random.default_rng(0).permutation(len(a))
    res = P.mcnemar_exact(np.array(a)[perm], np.array(b)[perm])
    assert (res["a_better"], res["b_better"]) == (n10, n01)
    assert res["p"] == pytest.approx(_exact_two_sided(n10, n10 + n01), rel=1e-9)
    assert res["p"] == pytest.approx(binomtest(n10, n10 + n01, 0.5).pvalue, rel=1e-9)
    flipped = P.mcnemar_exact(np.array(b)[perm], np.array(a)[perm])
    assert (flipped["a_better"], flipped["b_better"], flipped["p"]) == (n01, n10, pytest.approx(res["p"]))


def test_mcnemar_edge_cases():
    assert P.mcnemar_exact([1, 0, 1], [1, 0, 1])["p"] == 1.0  # no discordant item
    # several runs per item: shares of runs right; discordant = shares differ (the sign test)
    res = P.mcnemar_exact([1.0, 0.5, 0.5, 0.0], [0.5, 0.5, 0.0, 1.0])
    assert (res["a_better"], res["b_better"]) == (2, 1)
    assert res["p"] == pytest.approx(_exact_two_sided(2, 3))
    with pytest.raises(ValueError, match="length mismatch"):
        P.mcnemar_exact([1, 0], [1])


# ---------------------------------------------------------------- Holm
def _holm_by_definition(p: list[float]) -> list[float]:
    """adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)), ranks in ascending order."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    rank = {i: r for r, i in enumerate(order, 1)}
    return [min(1.0, max((m - rank[j] + 1) * p[j] for j in range(m) if rank[j] <= rank[i])) for i in range(m)]


def _holm_rejections(p: list[float], alpha: float) -> set:
    """The step-down procedure itself: reject in ascending order while p_(k) <= alpha / (m - k + 1)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out = set()
    for k, i in enumerate(order, 1):
        if p[i] > alpha / (len(p) - k + 1):
            break
        out.add(i)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_equals_its_definition(seed):
    rng = random.Random(seed)
    p = [rng.choice([rng.random() * 0.05, rng.random()]) for _ in range(rng.randint(1, 9))]
    got = P.holm(p)
    assert got == pytest.approx(_holm_by_definition(p))
    assert {i for i, q in enumerate(got) if q <= 0.05} == _holm_rejections(p, 0.05)


def test_holm_known_values_and_untested_entries():
    assert P.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    got = P.holm([0.02, float("nan"), 0.04])  # NaN = no test: stays NaN, m = 2
    assert got[0] == pytest.approx(0.04) and math.isnan(got[1]) and got[2] == pytest.approx(0.04)
    assert P.holm([]) == []


def test_verdict():
    assert P.verdict(0.1, 0.01, True) == "A > B"
    assert P.verdict(0.1, 0.01, False) == "B > A"  # lower is better (Levenshtein)
    assert P.verdict(-0.1, 0.01, True) == "B > A"
    assert P.verdict(0.1, 0.05, True) == P.NO_DIFFERENCE == "no difference at 5 %"
    assert P.verdict(float("nan"), 0.01, True) == "n/a"


# ---------------------------------------------------------------- weighted statistics = resampled data
def test_weights_give_the_statistics_of_the_resampled_data():
    rng = np.random.default_rng(3)
    n = 40
    x, y = rng.normal(size=n), rng.normal(size=n)
    y[5] = np.nan
    strata = np.array(["a"] * 25 + ["b"] * 15)
    W = P.resample_weights(n, 30, np.random.default_rng(9), strata)
    assert (W.sum(axis=1) == n).all() and (W[:, :25].sum(axis=1) == 25).all()
    assert np.array_equal(W, P.resample_weights(n, 30, np.random.default_rng(9), strata))  # seeded
    r = P.weighted_pearson(W, x, y)
    m = P.weighted_mean(W, y)
    for b in range(len(W)):
        idx = np.repeat(np.arange(n), W[b].astype(int))
        ok = np.isfinite(y[idx])
        assert r[b] == pytest.approx(pearsonr(x[idx][ok], y[idx][ok])[0], abs=1e-10)
        assert m[b] == pytest.approx(np.nanmean(y[idx]), abs=1e-12)
    one = np.zeros((1, n))
    one[0, 0] = n  # a resample of one item: undefined
    assert math.isnan(P.weighted_pearson(one, x, x)[0])
    assert math.isnan(P.weighted_pearson(np.ones((1, n)), np.full(n, 3.0), x)[0])  # constant side


# ---------------------------------------------------------------- paired bootstrap
def _acc_stat(c):
    return lambda W: P.weighted_mean(W, c)


def test_clearly_better_and_identical_judges():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=150)
    good, bad = gold + 0.3 * rng.normal(size=150), gold + 2.0 * rng.normal(size=150)
    res = P.paired_bootstrap(lambda W: P.weighted_pearson(W, good, gold), lambda W: P.weighted_pearson(W, bad, gold),
                             150, iters=500, seed=1)
    assert res["diff"] == pytest.approx(pearsonr(good, gold)[0] - pearsonr(bad, gold)[0])
    assert res["ci95"][0] > 0 and res["p"] < 0.01 and res["n_resamples"] == 500
    assert P.verdict(res["diff"], res["p"], True) == "A > B"
    same = P.paired_bootstrap(lambda W: P.weighted_pearson(W, good, gold), lambda W: P.weighted_pearson(W, good, gold),
                              150, iters=500, seed=1)
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0] and same["p"] == 1.0
    assert P.verdict(same["diff"], same["p"], True) == P.NO_DIFFERENCE
    a = P.paired_bootstrap(lambda W: P.weighted_pearson(W, good, gold), lambda W: P.weighted_pearson(W, bad, gold),
                           150, iters=500, seed=1)
    assert a == res  # seeded


def test_bootstrap_ci_covers_a_known_difference():
    """Items with P(A right) = 0.75, P(B right) = 0.6 (independent): the true accuracy difference is
    0.15; the 95% paired CI should cover it in about 95% of 200 data sets (binomial sd ~1.5%)."""
    rng = np.random.default_rng(11)
    hits = 0
    rejected = 0
    for rep in range(200):
        a = (rng.random(300) < 0.75).astype(float)
        b = (rng.random(300) < 0.60).astype(float)
        res = P.paired_bootstrap(_acc_stat(a), _acc_stat(b), 300, iters=400, seed=rep)
        hits += res["ci95"][0] <= 0.15 <= res["ci95"][1]
        rejected += P.mcnemar_exact(a, b)["p"] < 0.05
    assert 0.90 <= hits / 200 <= 0.99
    assert rejected / 200 > 0.9  # power at n = 300 for a 15-point difference is ~0.99


def test_bootstrap_p_tails():
    assert P.bootstrap_p(np.zeros(10)) == 1.0
    assert P.bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)
    assert P.bootstrap_p(np.r_[-np.ones(5), np.ones(95)]) == pytest.approx(2 * 6 / 101)


# ---------------------------------------------------------------- headline forms = the benchmarks' reports
GENAI = ["leftvote", "rightvote", "tievote", "bothbad_vote"]


def make_records(task: str, n: int, runs: int, rng: random.Random, skill: float = 0.5,
                 like: list | None = None) -> list[dict]:
    """Constructed per-(item, run) records of ``task``: each output is right with probability
    ``skill`` (accuracies), or the gold plus noise shrinking with ``skill`` (scores). With
    ``like``, the same items (gold and groups) as those records, new outputs."""
    spec = TASKS[task]
    out = []
    datasets = ["COCO", "ChartQA", "MathVista"]
    base = {r["item"]: r for r in like or []}
    for i in range(n):
        grp = {}
        if spec.parser == "vlrb_better":
            gold, labels = rng.choice([0, 1]), [0, 1, None]
            grp["category"] = ["general", "hallucination", "reasoning"][i % 3]
        elif spec.parser == "mj_pref":
            gold, labels = rng.choice([0, 1, 2]), [0, 1, 2]
        elif spec.parser == "genai_vote":
            gold, labels = rng.choice(GENAI), GENAI
        elif spec.parser == "mllm_pair":
            gold, labels = rng.choice("ABC"), list("ABC")
        elif spec.parser == "mllm_score":
            gold = float(rng.randint(1, 5))
        elif spec.parser == "mllm_batch":
            gold = "".join(rng.sample("ABCD", 4))
        else:
            gold = rng.uniform(1, 5)
            grp.update(set=["FOR", "LIVETALK", "P501"][i % 3], system=f"s{i % 6}", system_gt=1 + (i % 6) / 2)
        if spec.parser.startswith("mllm"):
            grp["dataset"] = datasets[i % 3 if i < n - 1 else 0]
        if like is not None:
            gold = base[i]["gold"]
            grp = {k: base[i][k] for k in grp}
        for r in range(runs):
            if spec.parser == "mllm_score":
                pred = float(min(5, max(1, round(gold + rng.gauss(0, 3 * (1 - skill))))))
            elif spec.parser == "mllm_batch":
                pred = gold if rng.random() < skill else "".join(rng.sample("ABCD", 4))
            elif spec.modality == "audio":
                pred = gold + rng.gauss(0, 2 * (1 - skill) + 0.05)
            else:
                pred = gold if rng.random() < skill else rng.choice(labels)
            out.append({"task": task, "item": i, "run": r, "seed": r, "swap": bool(r % 2), "pred": pred, "ok": True,
                        "how": "answer", "gold": gold, "raw": "", **grp})
    return out


def _keys_recs(records):
    recs = {(r["item"], int(r["run"])): Record.from_dict(r) for r in records}  # the samples lines, parsed
    return sorted(recs), recs


@pytest.mark.parametrize("task", sorted(TASKS))
def test_headline_form_equals_the_benchmark_report(task):
    """The paired statistic of every flex task: on the data (weights 1) it is the task's own
    report's headline; on a resample (integer weights) it is the report of the resampled
    records (items drawn twice relabelled as new items)."""
    spec = TASKS[task]
    runs = spec.runs if spec.multi_run else 1
    rng = random.Random(task)
    records = make_records(task, 24, min(runs, 3), rng, skill=0.6)
    keys, recs = _keys_recs(records)
    form = C.headline_stat(task, keys, recs)
    metric = spec.headline[0][0]
    assert form["metric"] == metric
    report = benchmarks.of(spec).report(spec, records, iters=0, seed=0)
    assert form["stat"](np.ones((1, 24)))[0] == pytest.approx(report[metric], abs=1e-12)
    W = P.resample_weights(24, 3, np.random.default_rng(5), form["strata"])
    got = form["stat"](W)
    for b in range(3):
        draws = np.repeat(np.arange(24), W[b].astype(int))
        resampled = [dict(r, item=k) for k, i in enumerate(draws) for r in records if r["item"] == i]
        want = benchmarks.of(spec).report(spec, resampled, iters=0, seed=0)[metric]
        assert got[b] == pytest.approx(want, abs=1e-10), (task, b)
    assert (form["correct"] is not None) == (C.task_kind(task) == "verdict")


# ---------------------------------------------------------------- compare end to end (constructed run folders)
def write_run(root: Path, model: str, records_by_task: dict) -> Path:
    """An lmms-eval output folder: results file with each task's report, samples jsonl with its
    records under the task's first metric (as flex_tasks.lmms logs them)."""
    folder = root / model
    folder.mkdir(parents=True)
    results = {}
    for task, records in records_by_task.items():
        spec = TASKS[task]
        rep = benchmarks.of(spec).report(spec, records, iters=20, seed=0)
        results[task] = {f"{m},none": rep[m] for m, _ in spec.metric_names() if m in rep}
        key = spec.metric_names()[0][0]
        with open(folder / f"2026-01-01T00-00-00_samples_{task}.jsonl", "w") as fh:
            for n, r in enumerate(records):
                fh.write(json.dumps({"doc_id": n, key: r, "filtered_resps": [r["raw"]]}) + "\n")
    (folder / "2026-01-01T00-00-00_results.json").write_text(json.dumps(
        {"results": results, "config": {"model": model, "model_args": f"pretrained=/ckpt/{model}"}}))
    return folder


TASKS3 = ["flex_mj_bench_alignment", "flex_nisqa", "flex_mllm_judge_batch"]


@pytest.fixture(scope="module")
def three_judges(tmp_path_factory):
    """good (skill 0.9), weak (skill 0.3) and a copy of good, on the same items."""
    root = tmp_path_factory.mktemp("paired_runs")
    good = {t: make_records(t, 120, 2 if TASKS[t].multi_run else 1, random.Random(f"{t}-gold"), 0.9) for t in TASKS3}
    weak = {t: make_records(t, 120, 2 if TASKS[t].multi_run else 1, random.Random(f"{t}-weak"), 0.3, like=recs)
            for t, recs in good.items()}
    return [write_run(root, "good", good), write_run(root, "weak", weak), write_run(root, "copy", good)]


def test_compare_verdicts_on_known_judges(three_judges):
    runs = load_runs(three_judges, labels=["good", "weak", "copy"], one_per_path=True)
    rep = C.compare(runs, iters=300)
    assert rep["warnings"] == []
    for t in TASKS3:
        by = {(p["a"], p["b"]): p["paired"] for p in rep["per_task"][t]["pairs"]}
        hib = TASKS[t].headline[0][1]
        assert by[("good", "weak")]["verdict"] == "A > B", t
        assert by[("weak", "copy")]["verdict"] == "B > A", t
        same = by[("good", "copy")]
        assert same["diff"] == 0 and same["p"] == 1.0 and same["verdict"] == P.NO_DIFFERENCE
        gw = by[("good", "weak")]
        # the recomputed headline is the results file's value, the difference is A - B
        for label, v in (("good", gw["a"]), ("weak", gw["b"])):
            assert v == pytest.approx(rep["per_task"][t]["judges"][label]["headline"][gw["metric"]]["value"], abs=1e-12)
        assert gw["diff"] == pytest.approx(gw["a"] - gw["b"])
        assert (gw["diff"] > 0) == hib and gw["diff_ci95"][0] <= gw["diff"] <= gw["diff_ci95"][1]
        assert gw["test"] == (C.ACCURACY_TEST if C.task_kind(t) == "verdict" else C.BOOTSTRAP_TEST)
    # Holm over the tasks of each pair
    for i in range(3):
        raw = [rep["per_task"][t]["pairs"][i]["paired"]["p"] for t in TASKS3]
        adj = [rep["per_task"][t]["pairs"][i]["paired"]["p_holm"] for t in TASKS3]
        assert adj == pytest.approx(_holm_by_definition(raw))


def test_mcnemar_in_compare_equals_scipy_on_the_records(three_judges):
    runs = load_runs(three_judges[:2], labels=["good", "weak"], one_per_path=True)
    rep = C.compare(runs, tasks=["flex_mj_bench_alignment"], iters=100)
    st = rep["per_task"]["flex_mj_bench_alignment"]["pairs"][0]["paired"]
    share = {}
    for run in runs:
        by_item: dict = {}
        for r in run.records("flex_mj_bench_alignment"):
            by_item.setdefault(r.item, []).append(float(r.pred == r.gold))
        share[run.label] = {i: np.mean(v) for i, v in by_item.items()}
    a_better = sum(share["good"][i] > share["weak"][i] for i in share["good"])
    b_better = sum(share["good"][i] < share["weak"][i] for i in share["good"])
    assert (st["a_better"], st["b_better"]) == (a_better, b_better)
    assert st["p"] == pytest.approx(binomtest(a_better, a_better + b_better, 0.5).pvalue)
    assert st["p_holm"] == st["p"]  # one task: nothing to correct


def _no_nan(token):
    raise AssertionError(f"compare.json holds {token}, which is not JSON")


def test_cli_writes_the_paired_table_and_strict_json(three_judges, tmp_path, capsys):
    rc = C.main([str(p) for p in three_judges[:2]] + ["--labels", "good,weak", "--out", str(tmp_path),
                                                       "--bootstrap-iters", "200"])
    assert rc == 0
    png = (tmp_path / "plots" / "paired_differences.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    md = (tmp_path / "compare.md").read_text()
    assert "## Is A better than B?" in md and "| A − B [95% CI] |" in md
    rep = json.loads((tmp_path / "compare.json").read_text(), parse_constant=_no_nan)
    for t in TASKS3:
        st = rep["per_task"][t]["pairs"][0]["paired"]
        assert st["verdict"] == "A > B"
        row = next(line for line in md.splitlines() if line.startswith(f"| {t} | good vs weak | {st['metric']}"))
        assert row.endswith("| A > B |") and f"{st['diff']:.3f}" in row
    assert "## Is A better than B?" in capsys.readouterr().out  # the terminal output too


def test_no_claim_where_mcnemar_and_the_headline_disagree():
    """A dataset-averaged headline can move against the discordant items: the verdict then makes no claim."""
    tests = {"t1": {"pairs": [{"paired": {"test": C.ACCURACY_TEST, "p": 0.001, "diff": 0.1, "higher_is_better": True,
                                          "a_better": 2, "b_better": 30}}]},
             "t2": {"pairs": [{"paired": {"test": C.ACCURACY_TEST, "p": 0.001, "diff": 0.1, "higher_is_better": True,
                                          "a_better": 30, "b_better": 2}}]}}
    C.apply_holm(tests)
    assert tests["t1"]["pairs"][0]["paired"]["verdict"] == P.NO_DIFFERENCE
    assert tests["t2"]["pairs"][0]["paired"]["verdict"] == "A > B"
    assert tests["t1"]["pairs"][0]["paired"]["p_holm"] == pytest.approx(0.002)


def test_no_bootstrap_p_on_a_handful_of_items():
    """3 items whose difference is the same in every resample: the bootstrap would say p = 0.002
    (an exact sign-flip test cannot go below 0.25); no p-value, no verdict."""
    a, b = np.array([1.0, 0.5, 0.8]), np.array([0.5, 0.0, 0.3])
    res = P.paired_bootstrap(_acc_stat(a), _acc_stat(b), 3, iters=1000, seed=0)
    assert res["diff"] == pytest.approx(0.5) and math.isnan(res["p"]) and "no bootstrap p-value" in res["note"]
    assert P.bootstrap_p(np.full(1000, 0.5)) == pytest.approx(2 / 1001)
    assert P.verdict(res["diff"], P.holm([res["p"]])[0], True) == "n/a"
    n = P.MIN_BOOTSTRAP_ITEMS
    assert np.isfinite(P.paired_bootstrap(_acc_stat(np.ones(n)), _acc_stat(np.zeros(n)), n, iters=100)["p"])
