"""Contract 2: per-run docs, seeds, order swaps, FLEX_JUDGE_RUNS, and records mapping back."""
import numpy as np
import pytest

from flex_tasks import lmms
from flex_tasks.data import load_items
from flex_tasks.protocol import DETAIL_KEYS, MAX_PRINTED_ROWS, TASKS


@pytest.fixture(autouse=True)
def _fixtures(monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_DATA", "fixtures")
    monkeypatch.delenv("FLEX_JUDGE_RUNS", raising=False)


def docs_of(task):
    spec = TASKS[task]
    return spec, lmms.expand(spec, load_items(spec)[1])


@pytest.mark.parametrize("task,runs", [("flex_vl_rewardbench", 5), ("flex_genai_bench_image", 7), ("flex_mllm_judge_pair", 3),
                                       ("flex_mj_bench_safety", 2), ("flex_nisqa", 1)])
def test_protocol_run_counts_and_seeds(task, runs):
    spec, docs = docs_of(task)
    n_items = len({d["flex_item"] for d in docs})
    assert len(docs) == n_items * runs
    assert [d["flex_run"] for d in docs[:runs]] == list(range(runs))  # item-major
    assert all(d["flex_seed"] == d["flex_run"] for d in docs)


def test_vl_rewardbench_swaps_follow_np_random_seed_k():
    spec, docs = docs_of("flex_vl_rewardbench")
    items = list(dict.fromkeys(d["flex_item"] for d in docs))
    for k in range(5):
        np.random.seed(k)  # the reference script: one uniform() per example, in dataset order
        expected = [np.random.uniform() >= 0.5 for _ in items]
        got = [d["flex_swap"] for d in docs if d["flex_run"] == k]
        assert got == expected


def test_mj_bench_second_run_is_swapped():
    _, docs = docs_of("flex_mj_bench_alignment")
    assert all(d["flex_swap"] == (d["flex_run"] == 1) for d in docs)
    d0, d1 = docs[0], docs[1]
    m0 = lmms.doc_to_messages(d0)[1]["content"]
    m1 = lmms.doc_to_messages(d1)[1]["content"]
    i0 = [c["url"] for c in m0 if c["type"] == "image"]
    i1 = [c["url"] for c in m1 if c["type"] == "image"]
    assert i0[0].tobytes() == i1[1].tobytes() and i0[1].tobytes() == i1[0].tobytes()


def test_runs_override(monkeypatch):
    monkeypatch.setenv("FLEX_JUDGE_RUNS", "2")
    spec, docs = docs_of("flex_genai_bench_image")
    assert spec.n_runs() == 2 and sorted({d["flex_run"] for d in docs}) == [0, 1]
    assert TASKS["flex_bvcc"].n_runs() == 1  # single-run protocols are not expanded
    monkeypatch.setenv("FLEX_JUDGE_RUNS", "zero")
    with pytest.raises(ValueError, match="FLEX_JUDGE_RUNS"):
        TASKS["flex_genai_bench_image"].n_runs()


def test_vlrb_record_maps_swapped_verdict_back():
    spec, docs = docs_of("flex_vl_rewardbench")
    swapped = next(d for d in docs if d["flex_swap"])
    straight = next(d for d in docs if not d["flex_swap"])
    first_better = "<answer>9</answer><answer>2</answer>"
    assert lmms.make_record(spec, straight, first_better).pred == 0
    assert lmms.make_record(spec, swapped, first_better).pred == 1  # presented first = response[1]


def test_mj_record_maps_swapped_verdict_back():
    spec, docs = docs_of("flex_mj_bench_quality")
    assert lmms.make_record(spec, docs[0], "<answer>9</answer><answer>2</answer>").pred == 0
    assert lmms.make_record(spec, docs[1], "<answer>9</answer><answer>2</answer>").pred == 1


def test_process_results_keeps_failures_visible():
    spec, docs = docs_of("flex_somos")
    out = lmms.process_results(docs[0], ["no answer here"])
    assert set(out) == {m for m, _ in spec.metric_names()}
    rec = next(iter(out.values()))
    assert rec["ok"] is False and rec["pred"] == 3.0 and rec["raw"] == "no answer here"
    assert (rec["seed"], rec["swap"], rec["how"]) == (0, False, "fallback")


def test_record_written_once_per_sample_line():
    """The record sits under the first metric; the others refer to it in a few bytes, and
    every aggregation still sees the record."""
    import json

    from lmms_eval.utils import handle_non_serializable

    from flex_tasks.record import Record, as_records

    spec, docs = docs_of("flex_vl_rewardbench")
    out = lmms.process_results(docs[1], ["<answer>9</answer><answer>2</answer>"])
    first, *rest = [m for m, _ in spec.metric_names()]
    line = json.dumps(out, default=handle_non_serializable)  # as lmms-eval writes a samples line
    assert line.count('"raw"') == 1 and all(json.loads(line)[m] == f"@{first}" for m in rest)
    assert as_records([out[rest[0]]]) == as_records([out[first]]) == [Record.from_dict(out[first])]
    assert as_records([out[first]])[0].as_dict() == out[first]
    rec = Record.from_dict(out[first])
    assert rec == lmms.make_record(spec, docs[1], "<answer>9</answer><answer>2</answer>")
    assert (rec.item, rec.run, rec.seed, rec.swap) == (docs[1]["flex_item"], 1, 1, docs[1]["flex_swap"])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_aggregations_produce_every_metric(task):
    """Fake outputs through process_results + every YAML aggregation (what lmms-eval calls)."""
    spec, docs = docs_of(task)
    outs = ["<answer>7</answer><answer>3</answer>", "<answer>[[B>A]]</answer>", "<answer>3.5</answer>", "garbage"]
    per_metric = {}
    for i, d in enumerate(docs):
        for m, v in lmms.process_results(d, [outs[i % len(outs)]]).items():
            per_metric.setdefault(m, []).append(v)
    got = {m: getattr(lmms, f"agg_{m}")(items) for m, items in per_metric.items()}
    assert sorted(got) == sorted(name for name, _ in spec.metric_names())
    for m, _ in spec.headline:
        assert isinstance(got[m], float) and isinstance(got[f"{m}_ci95"], list)
    assert 0 < got["parse_failure_rate"] <= 1
    # the bookkeeping is no metric: `flex-judge eval` computes it from the same records (flex_details)
    d = lmms.details_of(spec, lmms.report_for(per_metric["parse_failure_rate"]))
    assert sorted(d) == sorted(DETAIL_KEYS)
    assert d["n_runs"] == spec.n_runs() and d["n_items"] == len(docs) // spec.n_runs() and d["parse_failures"] >= 1
    assert d["bootstrap_seed"] == 1234 and isinstance(d["breakdown"], dict)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_printed_metrics_fit_one_screen(task):
    """Each metric is one row of lmms-eval's printed table (the e2e tests count the real rows)."""
    assert len(TASKS[task].metric_names()) <= MAX_PRINTED_ROWS
    assert not {name for name, _ in TASKS[task].metric_names()} & set(DETAIL_KEYS)


@pytest.mark.e2e
def test_limit_counts_items_with_all_their_runs(tiny_vl, tmp_path):
    """`lmms-eval --limit 2` on flex tasks judges the first 2 items, each with all its runs
    (docs are (item, run) pairs; lmms-eval's own doc count would judge item 0 twice)."""
    import glob
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from flex_judge.analysis.runs import load_run

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, FLEX_JUDGE_DATA="fixtures", FLEX_JUDGE_RUNS="3", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [str(Path(sys.executable).with_name("lmms-eval")), "--model", "flex", "--model_args",
           f"pretrained={tiny_vl},backend=hf", "--tasks", "flex_mj_bench_alignment,flex_mllm_judge_score",
           "--include_path", str(repo / "yaml_tasks"), "--gen_kwargs", "max_new_tokens=2", "--limit", "2",
           "--output_path", str(tmp_path), "--log_samples"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    found = glob.glob(str(tmp_path / "**" / "*_results.json"), recursive=True)
    assert found, proc.stderr[-3000:]
    results = json.loads(Path(found[0]).read_text())["results"]
    for task in ("flex_mj_bench_alignment", "flex_mllm_judge_score"):
        [path] = glob.glob(str(tmp_path / "**" / f"*_samples_{task}.jsonl"), recursive=True)
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        key = TASKS[task].metric_names()[0][0]  # every metric holds the per-(item, run) record
        judged = sorted((r[key]["item"], r[key]["run"]) for r in rows)
        assert judged == [(i, k) for i in (0, 1) for k in range(3)], task
        # a plain lmms-eval run has no flex_details: the readers count items and runs in the samples
        assert "n_items,none" not in results[task]
        assert {k: v for k, v in load_run(Path(found[0])).details(task).items() if k != "parse_failures"} \
            == {"n_items": 2, "n_runs": 3}
