"""Every flex task end to end through the real lmms-eval CLI (as `flex-judge eval` runs it:
`python -m flex_judge.lmms_main`) with the tiny checkpoints on the bundled fixtures: all vision
tasks in one invocation, all audio tasks in another, each twice to show that fixed seeds
reproduce (results and generated texts). The rows lmms-eval prints per task are counted on the
results file with lmms-eval's own table writer.

Engine: the transformers backend by default (FLEX_E2E_BACKEND=vllm switches; on this CPU
machine the vLLM backend currently fails on video inputs and, intermittently, on seeded
sampling inside vLLM's CPU runner: flex_models issues, not task issues). A random tiny model rarely writes
a parsable answer, so most outputs take the protocol fallback: the tests check the plumbing
(every metric in the results file, counts, parse-failure accounting against an independent
regex, reproducibility); the metric arithmetic itself is tested in tests/test_metrics*.py.
"""
import collections
import copy
import glob
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
BACKEND = os.environ.get("FLEX_E2E_BACKEND", "hf")
VISION_RUNS = 2  # FLEX_JUDGE_RUNS: keeps majority votes / medians / swaps meaningful, fits CI

HEAD = {
    "flex_vl_rewardbench": ["overall_acc", "macro_acc"],
    "flex_mj_bench_alignment": ["acc_w_tie", "acc_wo_tie"],
    "flex_mj_bench_safety": ["acc_w_tie", "acc_wo_tie"],
    "flex_mj_bench_quality": ["acc_w_tie", "acc_wo_tie"],
    "flex_genai_bench_image": ["acc_mean", "acc_majority"],
    "flex_genai_bench_editing": ["acc_mean", "acc_majority"],
    "flex_genai_bench_video": ["acc_mean", "acc_majority"],
    "flex_mllm_judge_score": ["pearson"],
    "flex_mllm_judge_pair": ["acc_w_tie", "acc_wo_tie"],
    "flex_mllm_judge_batch": ["levenshtein"],
    "flex_nisqa": ["lcc", "srcc", "mse"],
    "flex_bvcc": ["lcc", "srcc", "mse", "sys_lcc", "sys_srcc", "sys_mse"],
    "flex_somos": ["lcc", "srcc", "mse", "sys_lcc", "sys_srcc", "sys_mse"],
    "flex_voxsim": ["lcc", "srcc"],
    "flex_multimodal_rewardbench": ["overall_acc", "macro_acc"],  # not in the paper: its own run below
}
EXTRA = {
    "flex_vl_rewardbench": ["general_acc", "hallucination_acc", "reasoning_acc"],
    "flex_multimodal_rewardbench": ["correctness_acc", "preference_acc", "knowledge_acc", "reasoning_math_acc",
                                    "reasoning_coding_acc", "safety_bias_acc", "safety_toxicity_acc", "vqa_acc"],
}
COMMON = ["parse_failure_rate"]
DETAILS = ["n_items", "n_runs", "parse_failures", "bootstrap_seed", "bootstrap_iters", "breakdown"]
ITEMS = {"flex_vl_rewardbench": 6, "flex_mj_bench_alignment": 4, "flex_mj_bench_safety": 4, "flex_mj_bench_quality": 4,
         "flex_genai_bench_image": 4, "flex_genai_bench_editing": 4, "flex_genai_bench_video": 3,
         "flex_mllm_judge_score": 5, "flex_mllm_judge_pair": 4, "flex_mllm_judge_batch": 3,
         "flex_nisqa": 9, "flex_bvcc": 6, "flex_somos": 6, "flex_voxsim": 4, "flex_multimodal_rewardbench": 9}
BEYOND = ["flex_multimodal_rewardbench"]  # group flex_beyond_paper
VISION = [t for t in HEAD if not t.startswith(("flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim")) and t not in BEYOND]
AUDIO = ["flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim"]

PAIR = re.compile(r"<answer>(\d+)</answer>")
FLOAT = re.compile(r"<answer>(\d+\.?\d*)</answer>")
VERDICT = re.compile(r"<answer>(\[\[.*?\]\])</answer>")


def independent_ok(task: str, text: str) -> bool:
    """Parsed = the answer tags are there and their numbers lie on the system prompt's scale
    ('Score assistants 1-10', '1-5', 'from 1.0 to 5.0')."""
    if task.startswith(("flex_vl_", "flex_mj_", "flex_multimodal_")) or task == "flex_mllm_judge_pair":
        ints = [int(x) for x in PAIR.findall(text)]
        return len(ints) >= 2 and all(1 <= x <= 10 for x in ints[:2])
    if task == "flex_mllm_judge_score":
        ints = [int(x) for x in PAIR.findall(text)]
        return len(ints) >= 1 and 1 <= ints[0] <= 5
    if task.startswith("flex_genai"):
        return VERDICT.search(text) is not None
    m = FLOAT.search(text)
    return m is not None and 1.0 <= float(m.group(1)) <= 5.0


def run_cli(model_dir: Path, group: str, tasks: list[str], backend: str, out: Path, runs: int) -> tuple[dict, dict]:
    env = dict(os.environ, FLEX_JUDGE_DATA="fixtures", FLEX_JUDGE_RUNS=str(runs), HF_HUB_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "flex_judge.lmms_main", "--model", "flex",
           "--model_args", f"pretrained={model_dir},backend={backend}", "--tasks", group,
           "--gen_kwargs", "max_new_tokens=16", "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    found = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert found, f"no results file (the CLI exits 0 on errors):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    results = json.loads(Path(found[0]).read_text())
    samples = {}
    for t in tasks:
        [path] = glob.glob(str(out / "**" / f"*_samples_{t}.jsonl"), recursive=True)
        samples[t] = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return results, samples


@pytest.fixture(scope="module")
def vision(tiny_vl, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e_vision")
    return [run_cli(tiny_vl, "flex_vision", VISION, BACKEND, base / f"run{i}", VISION_RUNS) for i in range(2)]


@pytest.fixture(scope="module")
def audio(tiny_omni, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e_audio")
    return [run_cli(tiny_omni, "flex_audio", AUDIO, BACKEND, base / f"run{i}", 1) for i in range(2)]


def _check(task: str, results: dict, samples: dict, runs: int):
    res = results["results"][task]
    names = HEAD[task] + EXTRA.get(task, []) + [f"{m}_ci95" for m in HEAD[task]] + COMMON
    missing = [m for m in names if f"{m},none" not in res]
    assert not missing, f"{task}: metrics missing from the results file: {missing}"
    for m in HEAD[task] + EXTRA.get(task, []):
        v = res[f"{m},none"]
        assert isinstance(v, float) or v is None, (task, m, v)
        if isinstance(v, float) and not math.isnan(v):
            assert -1.0 <= v <= 1.0 or "mse" in m, (task, m, v)
    for m in HEAD[task]:
        ci = res[f"{m}_ci95,none"]
        assert isinstance(ci, list) and len(ci) == 2
    # bookkeeping: in flex_details, not among the printed metrics
    assert not [k for k in res if k.partition(",")[0] in DETAILS], res.keys()
    details = results["flex_details"][task]
    assert sorted(details) == sorted(DETAILS)
    assert details["n_runs"] == runs
    assert details["n_items"] == ITEMS[task]
    assert details["bootstrap_seed"] == 1234
    rows = samples[task]
    assert len(rows) == ITEMS[task] * runs
    if task != "flex_mllm_judge_batch":
        fails = sum(not independent_ok(task, r["filtered_resps"] if isinstance(r["filtered_resps"], str) else r["filtered_resps"][0]) for r in rows)
        assert details["parse_failures"] == fails
    else:
        assert 0 <= details["parse_failures"] <= len(rows)
    assert res["parse_failure_rate,none"] == pytest.approx(details["parse_failures"] / len(rows))
    assert results["configs"][task]["reasoning_tags"] == "none"


@pytest.mark.parametrize("task", VISION)
def test_vision_task_end_to_end(vision, task):
    results, samples = vision[0]
    runs = VISION_RUNS
    _check(task, results, samples, runs)


@pytest.mark.parametrize("task", AUDIO)
def test_audio_task_end_to_end(audio, task):
    results, samples = audio[0]
    _check(task, results, samples, 1)


def printed_rows(results: dict) -> collections.Counter:
    """Rows of the table lmms-eval prints for these results, per task or group: its own
    make_table over the results file (it hides the *_stderr keys, which it shows as columns)."""
    from lmms_eval.utils import make_table

    table = make_table(copy.deepcopy(results))  # it pops the aliases
    return collections.Counter(line.split("|")[1].strip().lstrip("- ") for line in table.splitlines()[2:])


@pytest.fixture(scope="module")
def beyond(tiny_vl, tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e_beyond")
    return run_cli(tiny_vl, "flex_beyond_paper", BEYOND, BACKEND, base / "run0", 2)


def test_beyond_paper_task_end_to_end(beyond):
    """Multimodal RewardBench (both orders = 2 runs) through the real lmms-eval CLI."""
    results, samples = beyond
    _check("flex_multimodal_rewardbench", results, samples, 2)
    recs = [r["overall_acc"] for r in samples["flex_multimodal_rewardbench"]]  # the record, under the first metric
    assert [(x["item"], x["run"], x["swap"]) for x in recs[:2]] == [(0, 0, False), (0, 1, True)]
    assert printed_rows(results)["flex_multimodal_rewardbench"] == 13


@pytest.mark.parametrize("task", VISION + AUDIO)
def test_printed_rows_per_task(vision, audio, task):
    """lmms-eval's printed table stays readable: at most MAX_PRINTED_ROWS rows per task, one per
    metric the task declares (bookkeeping lives in flex_details)."""
    from flex_tasks.protocol import MAX_PRINTED_ROWS, TASKS

    results = (vision if task in VISION else audio)[0][0]
    n = printed_rows(results)[task]
    assert n == len(TASKS[task].metric_names()), (task, n)
    assert n <= MAX_PRINTED_ROWS, f"{task}: lmms-eval prints {n} rows (at most {MAX_PRINTED_ROWS})"


def test_groups_in_results(vision, audio):
    vsub = vision[0][0]["group_subtasks"]
    assert set(vsub) >= {"flex_vision", "flex_mllm_judge", "flex_mj_bench", "flex_genai_bench"}
    assert set(audio[0][0]["group_subtasks"]["flex_audio"]) == set(AUDIO)
    assert set(vsub["flex_genai_bench"]) == {"flex_genai_bench_image", "flex_genai_bench_editing", "flex_genai_bench_video"}
    res = vision[0][0]["results"]
    for m in ("acc_mean", "acc_majority"):  # the paper's overall column: unweighted mean of the three
        members = [res[t][f"{m},none"] for t in vsub["flex_genai_bench"]]
        assert res["flex_genai_bench"][f"{m},none"] == pytest.approx(float(np.mean(members)), nan_ok=True)
        assert res["flex_genai_bench"][f"{m}_ci95,none"] is None


def _strip(results: dict) -> dict:
    return {"results": results["results"], "flex_details": results["flex_details"]}


def _texts(samples: dict) -> dict:
    return {t: [(r["doc_id"], r["filtered_resps"]) for r in rows] for t, rows in samples.items()}


@pytest.mark.parametrize("which", ["vision", "audio"])
def test_fixed_seeds_reproduce(which, request):
    (r1, s1), (r2, s2) = request.getfixturevalue(which)
    assert _texts(s1) == _texts(s2), "generated texts differ between two seeded runs"
    assert json.dumps(_strip(r1), sort_keys=True) == json.dumps(_strip(r2), sort_keys=True)
