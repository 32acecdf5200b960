"""`flex-judge compare` on real lmms-eval output folders: `flex` vs lmms-eval's `qwen2_5_vl` on the
same flex tasks, plus doctored copies (seeded random parsed verdicts) for non-degenerate
statistics. Every statistic is recomputed here independently from the samples jsonl
(sklearn's cohen_kappa_score, scipy's pearsonr / spearmanr, numpy's run plan)."""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score

from flex_judge.analysis import compare as C
from flex_judge.analysis.runs import RunError, load_runs
from flex_tasks.protocol import TASKS
from test_leaderboard_fixtures import doctor, make_runs
from record_helpers import rec as typed_rec

pytestmark = pytest.mark.e2e
COMMON = ["flex_mj_bench_alignment", "flex_mllm_judge_pair", "flex_mllm_judge_score"]


@pytest.fixture(scope="session")
def runs(tiny_vl):
    return make_runs(tiny_vl)


@pytest.fixture(scope="session")
def doctored(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("doctored")
    d1 = doctor(runs["a"], root / "d1", seed=1)
    d2 = doctor(runs["a"], root / "d2", seed=2, agree_with=d1, p_agree=0.6)
    return d1, d2


def _samples(folder: Path, task: str) -> dict:
    """(item, run) -> (record, doc_id), read straight from the jsonl."""
    f = next(folder.glob(f"*/*_samples_{task}.jsonl"))
    key = TASKS[task].metric_names()[0][0]
    out = {}
    for line in f.read_text().splitlines():
        row = json.loads(line)
        out[(row[key]["item"], row[key]["run"])] = (row[key], row["doc_id"])
    return out


def _same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == pytest.approx(b, abs=1e-9)


def test_flex_vs_qwen_needs_matching_tasks_and_items(runs):
    a, b = load_runs([runs["a"], runs["b"]], one_per_path=True)
    assert (a.model, b.model) == ("flex", "qwen2_5_vl")
    with pytest.raises(C.CompareError, match="different flex tasks.*flex_vl_rewardbench"):
        C.compare([a, b])
    with pytest.raises(C.CompareError, match="cover different \\(item, run\\) records"):
        C.compare([a, b], tasks=COMMON)
    with pytest.raises(C.CompareError, match="not in run"):
        C.compare([a, b], tasks=["flex_vl_rewardbench"])
    with pytest.warns(UserWarning, match="common"):
        rep = C.compare([a, b], intersect=True, iters=50)
    assert rep["tasks"] == COMMON and len(rep["warnings"]) == 1 + len(COMMON)
    for t in COMMON:  # B ran --limit 3: 3 items x 2 runs = 6 docs
        assert rep["per_task"][t]["n_records"] == 6 and rep["per_task"][t]["n_items"] == 3


def test_real_runs_statistics_equal_independent(runs):
    a, b = load_runs([runs["a"], runs["b"]], one_per_path=True)
    with pytest.warns(UserWarning):
        rep = C.compare([a, b], intersect=True, iters=50)
    for t in COMMON:
        sa, sb = _samples(runs["a"], t), _samples(runs["b"], t)
        keys = sorted(set(sa) & set(sb), key=lambda k: (str(k[0]), k[1]))
        pair = rep["per_task"][t]["pairs"][0]
        if C.task_kind(t) == "verdict":
            la = [str(sa[k][0]["pred"]) for k in keys]
            lb = [str(sb[k][0]["pred"]) for k in keys]
            assert _same(pair["agreement"], float(np.mean([x == y for x, y in zip(la, lb)])))
            with warnings.catch_warnings():  # sklearn warns on a single label (random judges never parse)
                warnings.simplefilter("ignore")
                want = cohen_kappa_score(la, lb)
            assert _same(pair["kappa"], float(want))
        fails_b = sum(not sb[k][0]["ok"] for k in keys) / len(keys)
        assert rep["per_task"][t]["judges"][b.label]["parse_failure_rate"] == pytest.approx(fails_b)
        res = json.loads(b.results_file.read_text())["results"][t]
        for m, h in rep["per_task"][t]["judges"][b.label]["headline"].items():
            assert _same(h["value"], res[f"{m},none"])


def test_kappa_and_correlations_equal_sklearn_scipy(doctored):
    d1, d2 = load_runs(list(doctored), labels=["j1", "j2"])
    rep = C.compare([d1, d2], iters=100)
    assert rep["warnings"] == [] and len(rep["tasks"]) == 6
    seen = set()
    for t, res in rep["per_task"].items():
        s1, s2 = _samples(doctored[0], t), _samples(doctored[1], t)
        keys = sorted(s1, key=lambda k: (str(k[0]), k[1]))
        pair = res["pairs"][0]
        kind = C.task_kind(t)
        seen.add(kind)
        if kind == "verdict":
            la = ["none" if s1[k][0]["pred"] is None else str(s1[k][0]["pred"]) for k in keys]
            lb = ["none" if s2[k][0]["pred"] is None else str(s2[k][0]["pred"]) for k in keys]
            assert pair["kappa"] == pytest.approx(cohen_kappa_score(la, lb), abs=1e-12)
            assert pair["agreement"] == pytest.approx(np.mean([x == y for x, y in zip(la, lb)]))
            differs = la != lb
            assert pair["agreement_ci95"][0] <= pair["agreement"] <= pair["agreement_ci95"][1]
            if 0 < pair["agreement"] < 1:
                seen.add("non-trivial verdict agreement")
        elif kind == "score":
            x = [float(s1[k][0]["pred"]) for k in keys]
            y = [float(s2[k][0]["pred"]) for k in keys]
            assert pair["pearson"] == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
            assert pair["spearman"] == pytest.approx(spearmanr(x, y)[0], abs=1e-12)
            assert pair["pearson_parsed"] == pytest.approx(pair["pearson"])
            differs = x != y
        else:
            a = [s1[k][0]["pred"] for k in keys]
            b = [s2[k][0]["pred"] for k in keys]
            assert pair["exact_agreement"] == pytest.approx(np.mean([p == q for p, q in zip(a, b)]))
            differs = a != b
        # the most-disagreeing items are real item ids, sorted by disagreement
        top = pair["top_disagreements"]
        assert bool(top) == differs and {d["item"] for d in top} <= {k[0] for k in keys}
        assert [d["disagreement"] for d in top] == sorted((d["disagreement"] for d in top), reverse=True)
    assert seen == {"verdict", "score", "ranking", "non-trivial verdict agreement"}


def test_position_consistency_equals_replayed_order(doctored):
    d1 = load_runs([doctored[0]])[0]
    # MJ-Bench: run 0 original order, run 1 swapped (verdicts are logged mapped back)
    s = _samples(doctored[0], "flex_mj_bench_alignment")
    items = {k[0] for k in s}
    want = np.mean([s[(i, 0)][0]["pred"] == s[(i, 1)][0]["pred"] for i in items])
    pc = C.position_consistency(d1, "flex_mj_bench_alignment")
    assert pc["rate"] == pytest.approx(want) and pc["pairs"] == len(items)
    # VL-RewardBench: run k shows item i swapped when RandomState(k).uniform(size=n)[i] >= 0.5
    s = _samples(doctored[0], "flex_vl_rewardbench")
    n_runs = 2
    n_items = len({k[0] for k in s})
    draws = [np.random.RandomState(k).uniform(size=n_items) for k in range(n_runs)]
    same = total = 0
    by_item: dict = {}
    for (item, run), (rec, doc_id) in s.items():
        by_item.setdefault(item, []).append((draws[run][doc_id // n_runs] >= 0.5, rec["pred"]))
    for rows in by_item.values():
        for sw_a, pa in rows:
            for sw_b, pb in rows:
                if not sw_a and sw_b:
                    total += 1
                    same += pa == pb
    pc = C.position_consistency(d1, "flex_vl_rewardbench")
    assert pc["pairs"] == total and total > 0
    assert pc["rate"] == pytest.approx(same / total)


def _no_nan(token):
    raise AssertionError(f"compare.json holds {token}, which is not JSON")


def test_undefined_statistics_are_written_as_null():
    report = {"per_task": {"t": {"pairs": [{"kappa": float("nan"), "labels": [1], "ci": [float("nan"), 0.5]}]}}}
    text = json.dumps(C._for_json(report), allow_nan=False)
    back = json.loads(text, parse_constant=_no_nan)
    assert back["per_task"]["t"]["pairs"][0] == {"kappa": None, "ci": [None, 0.5]}


def test_cli_report_and_plots(doctored, tmp_path):
    rc = C.main([str(doctored[0]), str(doctored[1]), "--out", str(tmp_path), "--labels", "j1,j2",
                 "--bootstrap-iters", "50"])
    assert rc == 0
    md = (tmp_path / "compare.md").read_text()
    assert "Cohen's kappa" in md and "j1 vs j2" in md and "![agreement_heatmap](plots/agreement_heatmap.png)" in md
    rep = json.loads((tmp_path / "compare.json").read_text(), parse_constant=_no_nan)  # strict JSON
    top = rep["per_task"]["flex_vl_rewardbench"]["pairs"][0]["top_disagreements"]
    assert f"`{top[0]['item']}`" in md
    for name in ("agreement_heatmap", "score_scatter", "benchmark_bars"):
        path = tmp_path / "plots" / f"{name}.png"
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        with Image.open(path) as im:
            im.load()
            assert im.size[0] > 100 and im.size[1] > 100


def test_cli_errors(runs, tmp_path, capsys):
    assert C.main([str(tmp_path), str(runs["a"])]) == 2
    assert "not an lmms-eval output folder" in capsys.readouterr().err
    assert C.main([str(runs["a"]), str(runs["b"])]) == 2
    assert "different flex tasks" in capsys.readouterr().err
    assert C.main([str(runs["a"]), str(runs["b"]), "--tasks", ",".join(COMMON)]) == 2
    assert "different (item, run) records" in capsys.readouterr().err
    assert C.main([str(runs["a"])]) == 2
    assert "at least two runs" in capsys.readouterr().err
    assert C.main([str(runs["root"]), str(runs["a"])]) == 2  # root holds a/ and b/: nothing below one level
    both = tmp_path / "both"
    both.mkdir()
    for k in ("a", "b"):
        (both / k).symlink_to(next(runs[k].glob("*/*_results.json")).parent, target_is_directory=True)
    with pytest.raises(RunError, match="pass one results file"):
        load_runs([both, runs["a"]], one_per_path=True)


def test_cohen_kappa_cases():
    assert C.cohen_kappa(["a", "b", "a"], ["a", "b", "b"]) == pytest.approx(cohen_kappa_score(["a", "b", "a"], ["a", "b", "b"]))
    assert math.isnan(C.cohen_kappa(["x", "x"], ["x", "x"]))
    assert C.cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        C.cohen_kappa(["a"], [])


def test_parsed_only_agreement_and_no_fallback_scores_plotted():
    """Agreement / kappa over records both judges parsed sit beside the all-records values, and
    the score scatter gets no fallback values (an unparsed MLLM score is -1, not a score)."""
    keys = [(0, 0), (1, 0), (2, 0)]

    def recs(preds, oks):
        return {k: typed_rec(k[0], 0, p, ok=ok) for k, p, ok in zip(keys, preds, oks)}

    st = C._pair_stats("verdict", keys, recs([0, 1, None], [True, True, False]), recs([0, 0, None], [True, True, True]),
                       top=3, iters=0, seed=0)
    assert st["agreement"] == pytest.approx(2 / 3) and st["n_both_parsed"] == 2
    assert st["agreement_parsed"] == pytest.approx(0.5)
    assert st["kappa_parsed"] == pytest.approx(cohen_kappa_score(["0", "1"], ["0", "0"]))
    st = C._pair_stats("score", keys, recs([4, -1, 2], [True, False, True]), recs([5, 3, 1], [True, True, True]),
                       top=3, iters=0, seed=0)
    assert st["scores"] == {"a": [4.0, 2.0], "b": [5.0, 1.0]}
