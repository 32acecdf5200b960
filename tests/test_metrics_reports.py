"""Benchmark reports on crafted per-(item, run) records, checked by hand / scipy."""
import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from flex_tasks import reports
from flex_tasks.benchmarks import genai_bench, mj_bench, mllm_as_a_judge, vl_rewardbench

IT = 200  # bootstrap iterations in tests


from record_helpers import rec  # noqa: E402  (typed Records: the reports read attributes)


def test_vl_rewardbench_overall_macro_categories():
    # 4 items x 2 runs; categories: 2 general, 1 hallucination, 1 reasoning
    cats = {"g1": "general", "g2": "general", "h1": "hallucination", "r1": "reasoning"}
    preds = {  # run0, run1 ; gold is 0 for all; None = tie / unparsable (wrong)
        "g1": [0, 0], "g2": [1, None], "h1": [0, 1], "r1": [None, 0]}
    recs = [rec(i, k, preds[i][k], 0, ok=not (i == "r1" and k == 0), category=cats[i]) for i in cats for k in (0, 1)]
    out = vl_rewardbench.accuracy_report(recs, iters=IT)
    run0 = [1, 0, 1, 0]
    run1 = [1, 0, 0, 1]
    assert out["overall_acc"] == pytest.approx((np.mean(run0) + np.mean(run1)) / 2)
    macro0 = np.mean([np.mean([1, 0]), 1, 0])
    macro1 = np.mean([np.mean([1, 0]), 0, 1])
    assert out["macro_acc"] == pytest.approx((macro0 + macro1) / 2)
    assert out["general_acc"] == pytest.approx(0.5)
    assert out["hallucination_acc"] == pytest.approx(0.5)
    assert out["reasoning_acc"] == pytest.approx(0.5)
    assert out["parse_failures"] == 1 and out["n_runs"] == 2 and out["n_items"] == 4
    assert out["breakdown"]["ties"] == 1
    lo, hi = out["overall_acc_ci95"]
    assert 0 <= lo <= out["overall_acc"] <= hi <= 1


def test_vl_rewardbench_missing_category_is_nan_and_excluded_from_macro():
    recs = [rec("a", 0, 0, 0, category="general"), rec("b", 0, 0, 1, category="reasoning")]
    out = vl_rewardbench.accuracy_report(recs, iters=IT)
    assert math.isnan(out["hallucination_acc"])
    assert out["macro_acc"] == pytest.approx(0.5)


def test_mj_bench_with_and_without_ties():
    # gold 0/1/2(tie); preds per run (0 original, 1 swapped mapped back)
    data = [("a", 0, [0, 0]), ("b", 1, [2, 1]), ("c", 0, [1, 2]), ("d", 2, [2, 0])]
    recs = [rec(i, k, p[k], g, ok=not (i == "c" and k == 1)) for i, g, p in data for k in (0, 1)]
    out = mj_bench.accuracy_report(recs, iters=IT)
    w0, w1 = np.mean([1, 0, 0, 1]), np.mean([1, 1, 0, 0])
    assert out["acc_w_tie"] == pytest.approx((w0 + w1) / 2)
    # w.o. tie: neither pred nor gold is a tie. run0: a(1), c(0) -> 0.5 ; run1: a(1), b(1) -> 1.0
    assert out["acc_wo_tie"] == pytest.approx((0.5 + 1.0) / 2)
    assert out["breakdown"]["tie_predictions"] == 3 and out["breakdown"]["gold_ties"] == 1
    assert out["parse_failures"] == 1


def test_genai_mean_and_majority():
    golds = {"x": "leftvote", "y": "tievote", "z": "bothbad_vote"}
    preds = {"x": ["leftvote", "rightvote", "leftvote"], "y": ["none", "none", "tievote"],
             "z": ["rightvote", "bothbad_vote", "tievote"]}
    recs = [rec(i, k, preds[i][k], golds[i], ok=preds[i][k] != "none") for i in golds for k in range(3)]
    out = genai_bench.accuracy_report(recs, iters=IT)
    per_run = [np.mean([preds[i][k] == golds[i] for i in golds]) for k in range(3)]
    assert out["acc_mean"] == pytest.approx(np.mean(per_run))
    maj = [Counter(preds[i]).most_common(1)[0][0] == golds[i] for i in golds]  # z: 3-way tie -> first seen
    assert out["acc_majority"] == pytest.approx(np.mean(maj)) == pytest.approx(1 / 3)
    assert out["parse_failures"] == 2


def test_mllm_pair_majority_per_dataset():
    # dataset d1: 3 items, d2: 1 item (single-item dataset), d3: only tie-gold items
    rows = [("i1", "d1", "A", ["A", "A", "B"]), ("i2", "d1", "B", ["A", "B", "C"]), ("i3", "d1", "C", ["C", "B", "A"]),
            ("i4", "d2", "B", ["B", "C", "C"]), ("i5", "d3", "C", ["A", "A", "A"])]
    recs = [rec(i, k, p[k], g, dataset=d) for i, d, g, p in rows for k in range(3)]
    out = mllm_as_a_judge.pair_report(recs, iters=IT)
    # majorities: i1 A (ok), i2 C (wrong), i3 C (ok), i4 B (ok), i5 A (wrong)
    d1, d2, d3 = 2 / 3, 1.0, 0.0
    assert out["acc_w_tie"] == pytest.approx(np.mean([d1, d2, d3]))
    # w.o. tie: d1 -> i1, i2 -> 0.5 ; d2 -> 1.0 ; d3 has no non-tie items: left out
    assert out["acc_wo_tie"] == pytest.approx(np.mean([0.5, 1.0]))
    assert set(out["breakdown"]["per_dataset_wo_tie"]) == {"d1", "d2"}


def test_mllm_score_pearson_nan_to_zero_median_over_runs():
    gold = {"a": 1, "b": 3, "c": 5, "d": 2, "e": 4}
    ds = {"a": "D1", "b": "D1", "c": "D1", "d": "D2", "e": "SINGLE"}
    preds = [  # per run
        {"a": 1, "b": 2, "c": 5, "d": 3, "e": 4},
        {"a": -1, "b": 4, "c": 4, "d": 3, "e": 1},
        {"a": 2, "b": 2, "c": 2, "d": 3, "e": 2},  # constant on D1 -> NaN -> 0
    ]
    recs = [rec(i, k, preds[k][i], gold[i], ok=preds[k][i] != -1, dataset=ds[i]) for i in gold for k in range(3)]
    out = mllm_as_a_judge.score_report(recs, iters=IT)
    d1 = [stats.pearsonr([preds[k][i] for i in "abc"], [gold[i] for i in "abc"])[0] for k in range(2)] + [0.0]
    # D2 and SINGLE have one item each: correlation undefined -> 0
    expected = np.mean([np.median(d1), 0.0, 0.0])
    assert out["pearson"] == pytest.approx(expected)
    assert out["breakdown"]["per_dataset_pearson"]["D2"] == 0.0
    assert out["parse_failures"] == 1


def test_mllm_batch_worst_run_per_dataset():
    rows = [("i1", "d1", "ABCD", ["ABCD", "ABDC"]), ("i2", "d1", "BA", ["AB", "BA"]), ("i3", "d2", "CAB", ["", "CAB"])]
    recs = [rec(i, k, p[k], g, dataset=d, ok=bool(p[k])) for i, d, g, p in rows for k in range(2)]
    out = mllm_as_a_judge.batch_report(recs, iters=IT)
    d1 = max(np.mean([0, 2 / 2]), np.mean([2 / 4, 0]))
    d2 = max(1.0, 0.0)
    assert out["levenshtein"] == pytest.approx((d1 + d2) / 2)
    assert out["parse_failures"] == 1


def test_mos_utterance_system_and_sets():
    rng = np.random.default_rng(0)
    n = 24
    gold = np.round(rng.uniform(1, 5, n), 1)
    pred = np.round(gold + rng.normal(0, 0.7, n), 1)
    systems = [f"s{i % 4}" for i in range(n)]
    sys_gt = {"s0": 2.0, "s1": 3.5, "s2": 4.1}  # s3 has no GT
    sets = ["FOR" if i < 12 else "P501" for i in range(n)]
    recs = [rec(f"u{i}", 0, float(pred[i]), float(gold[i]), set=sets[i], system=systems[i],
                system_gt=sys_gt.get(systems[i], float("nan"))) for i in range(n)]
    out = reports.mos(recs, system_level=True, per_set=("FOR", "P501"), iters=IT)
    assert out["lcc"] == pytest.approx(stats.pearsonr(pred, gold)[0])
    assert out["srcc"] == pytest.approx(stats.spearmanr(pred, gold)[0])
    assert out["mse"] == pytest.approx(np.mean((pred - gold) ** 2))
    per_set = out["breakdown"]["per_set"]  # bookkeeping (flex_details), not printed metrics
    assert per_set["FOR"]["lcc"] == pytest.approx(stats.pearsonr(pred[:12], gold[:12])[0])
    assert per_set["P501"]["srcc"] == pytest.approx(stats.spearmanr(pred[12:], gold[12:])[0])
    assert not any(k.endswith(("_for", "_p501")) for k in out)
    sys_pred = [pred[[i for i in range(n) if systems[i] == s]].mean() for s in ("s0", "s1", "s2")]
    sys_gold = [2.0, 3.5, 4.1]
    assert out["sys_lcc"] == pytest.approx(stats.pearsonr(sys_pred, sys_gold)[0])
    assert out["sys_srcc"] == pytest.approx(stats.spearmanr(sys_pred, sys_gold)[0])
    assert out["sys_mse"] == pytest.approx(np.mean((np.array(sys_pred) - sys_gold) ** 2))
    assert out["breakdown"]["systems_without_gt"] == ["s3"]
    for m in ("lcc", "srcc", "mse", "sys_lcc"):
        lo, hi = out[f"{m}_ci95"]
        assert lo <= out[m] <= hi


def test_mos_constant_predictions_give_nan_and_count_fallbacks():
    recs = [rec(f"u{i}", 0, 3.0, g, ok=False, how="fallback") for i, g in enumerate([1.0, 2.0, 4.0])]
    out = reports.mos(recs, iters=IT)
    assert math.isnan(out["lcc"]) and math.isnan(out["srcc"])
    assert out["mse"] == pytest.approx(np.mean([4, 1, 1]))
    assert out["parse_failures"] == 3 and out["parse_failure_rate"] == 1.0
    assert out["breakdown"]["fallbacks_by_rule"] == {"fallback": 3}


def test_reports_are_deterministic():
    recs = [rec(f"i{i}", k, (i + k) % 2, 0, category="general") for i in range(20) for k in range(3)]
    a = vl_rewardbench.accuracy_report(recs, iters=IT)
    b = vl_rewardbench.accuracy_report(list(reversed(recs))[::-1], iters=IT)
    assert a == b and a["bootstrap_seed"] == 1234


# ---------------------------------------------------------------- paper-comparable variants
def test_mllm_score_as_released_pools_runs_hand_computed():
    """Released test/evaluate.py never resets its lists: run k = Pearson over runs 1..k pooled.
    gold 1,2,3; runs (1,2,3), (3,2,1), (1,2,3): per run r = 1, -1, 1 (median 1); pooled
    r = 1, 0 (products -1+0+1+1+0-1 = 0), 1/3 (sum of products 2 over sqrt(6*6)) -> median 1/3."""
    preds = [[1, 2, 3], [3, 2, 1], [1, 2, 3]]
    recs = [rec(i, k, preds[k][i], i + 1, dataset="D") for i in range(3) for k in range(3)]
    out = mllm_as_a_judge.score_report(recs, iters=0)
    assert out["pearson"] == pytest.approx(1.0)
    assert out["pearson_as_released"] == pytest.approx(1 / 3)
    # two datasets: the mean over datasets of the pooled medians; a constant pooled run -> 0
    recs += [rec(10 + i, k, 2, i + 1, dataset="E") for i in range(3) for k in range(3)]
    out = mllm_as_a_judge.score_report(recs, iters=0)
    assert out["pearson_as_released"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["breakdown"]["per_dataset_pearson_as_released"] == pytest.approx({"D": 1 / 3, "E": 0.0})


def test_mllm_batch_as_released_pools_runs_hand_computed():
    """Distances per (item, run): run0 (0, 1), run1 (1, 1), run2 (0, 0). Per run means .5, 1, 0
    -> worst 1; pooled means .5, .75, .5 -> worst .75."""
    pred = {(0, 0): "AB", (1, 0): "BA", (0, 1): "BA", (1, 1): "BA", (0, 2): "AB", (1, 2): "AB"}
    recs = [rec(i, k, pred[i, k], "AB", dataset="D") for i in range(2) for k in range(3)]
    out = mllm_as_a_judge.batch_report(recs, iters=0)
    assert out["levenshtein"] == pytest.approx(1.0)
    assert out["levenshtein_as_released"] == pytest.approx(0.75)


def test_vl_rewardbench_official_scorer_majority_over_parsed():
    """cal.py: per item the verdict of more than half of the runs; 'no choice' (tie or
    unparsed) never counts as agree/reject; items without a majority or with a no-choice
    majority are left out of the denominator."""
    gold = 0
    runs = {  # 3 runs per item
        "g1": ([0, 0, 1], "general"),  # agree
        "g2": ([1, 1, None], "general"),  # reject
        "g3": ([0, 1, None], "general"),  # no majority -> left out
        "h1": ([None, None, 0], "hallucination"),  # majority without a choice -> left out
        "h2": ([0, 0, 0], "hallucination"),  # agree
        "r1": ([1, 0, 1], "reasoning"),  # reject
    }
    recs = [rec(i, k, p[k], gold, ok=p[k] is not None, category=c) for i, (p, c) in runs.items() for k in range(3)]
    out = vl_rewardbench.accuracy_report(recs, iters=0)
    assert out["overall_acc_official"] == pytest.approx(2 / 4)
    assert out["macro_acc_official"] == pytest.approx((1 / 2 + 1 / 1 + 0 / 1) / 3)
    assert out["breakdown"]["official_scorer"]["items_counted"] == 4
    # the Flex protocol on the same records: mean over runs of accuracy over all items
    per_run = [np.mean([p[k] == gold for p, _ in runs.values()]) for k in range(3)]
    assert out["overall_acc"] == pytest.approx(np.mean(per_run))


def test_every_task_reports_through_its_benchmark_module():
    """Each task's report is its benchmark module's `report` hook (no report names anywhere
    else), and it returns the task's printed metrics and the bookkeeping."""
    from flex_tasks import benchmarks
    from flex_tasks.protocol import DETAIL_KEYS, TASKS

    for spec in TASKS.values():
        b = benchmarks.of(spec)
        defaults = {"report": benchmarks.no_report, "write_fixtures": benchmarks.no_fixtures,
                    "demo_example": benchmarks.no_demo_example}
        for hook, default in defaults.items():
            assert getattr(b, hook) is not default, (spec.task, hook)
    docs = {"flex_vl_rewardbench": dict(gold=0, category="general"), "flex_mj_bench_quality": dict(gold=0),
            "flex_genai_bench_image": dict(gold="leftvote"), "flex_mllm_judge_pair": dict(gold="A", dataset="D"),
            "flex_mllm_judge_score": dict(gold=3, dataset="D"), "flex_mllm_judge_batch": dict(gold="AB", dataset="D"),
            "flex_bvcc": dict(gold=3.0, set="", system="s", system_gt=3.0)}
    preds = {"flex_vl_rewardbench": 0, "flex_mj_bench_quality": 0, "flex_genai_bench_image": "leftvote",
             "flex_mllm_judge_pair": "A", "flex_mllm_judge_score": 3, "flex_mllm_judge_batch": "AB", "flex_bvcc": 3.0}
    for task, extra in docs.items():
        spec = TASKS[task]
        gold = extra.pop("gold")
        recs = [rec(i, 0, preds[task], gold, **extra) for i in range(3)]
        out = benchmarks.of(spec).report(spec, recs, iters=0, seed=0)
        missing = {m for m, _ in spec.metric_names()} | set(DETAIL_KEYS)
        assert missing <= set(out), (task, missing - set(out))
