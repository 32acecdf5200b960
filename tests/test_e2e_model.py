"""End to end through the REAL lmms-eval CLI (`python -m lmms_eval --model flex ...`) on the tiny
checkpoints: an image chat task on both engines (their greedy float32 answers must be equal)
and an audio chat task on Omni. The tasks are tiny self-contained YAMLs written here, so this
test does not depend on the benchmark tasks. The CLI exits 0 on many errors, so every check
reads the results JSON and the samples jsonl.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

UTILS = '''
import numpy as np
from PIL import Image

SYSTEM = [{"role": "system", "content": [{"type": "text", "text": "You are a judge."}]}]


def doc_to_visual(doc):
    return []


def doc_to_text(doc):
    return doc["question"]


def image_messages(doc):
    rgb = np.zeros((56, 56, 3), dtype=np.uint8) + np.array(doc["color"], dtype=np.uint8)
    return SYSTEM + [{"role": "user", "content": [
        {"type": "image", "url": Image.fromarray(rgb)},
        {"type": "text", "text": "\\n\\n[Question]\\n" + doc["question"]}]}]


def audio_messages(doc):
    if doc.get("wav"):
        audio = doc["wav"]  # a path (the bad-media task points at a missing file)
    else:
        sr = doc["sr"]
        t = np.arange(sr) / sr
        audio = {"array": np.sin(2 * np.pi * doc["hz"] * t).astype(np.float32), "sampling_rate": sr}
    return SYSTEM + [{"role": "user", "content": [
        {"type": "text", "text": "\\n\\n[Question]\\n" + doc["question"] + " "},
        {"type": "audio", "url": audio}]}]


def process_results(doc, results):
    return {"answered": float(len(results[0]) > 0)}
'''

TASK = '''
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_messages: !function utils.{messages}
doc_to_target: gold
process_results: !function utils.process_results
reasoning_tags: none
generation_kwargs:
  until: []
  temperature: 0
metric_list:
  - metric: answered
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0
'''

DOCS = {
    "image.jsonl": [{"question": f"Is it red? {i}", "color": [40 * i, 200, 30], "gold": "x", "flex_seed": i}
                    for i in range(3)],
    "audio.jsonl": [{"question": f"Rate it {i}", "sr": [22050, 16000, 44100][i], "hz": 300 + 50 * i,
                     "wav": "", "gold": "x"} for i in range(3)],
    "bad_audio.jsonl": [{"question": "Rate it", "sr": 16000, "hz": 1, "wav": "/no/such/clip.wav", "gold": "x"}],
}


@pytest.fixture(scope="module")
def include_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("flextasks")
    (d / "utils.py").write_text(UTILS)
    for name, rows in DOCS.items():
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name, data, messages in [("flextest_image", "image.jsonl", "image_messages"),
                                 ("flextest_audio", "audio.jsonl", "audio_messages"),
                                 ("flextest_badaudio", "bad_audio.jsonl", "audio_messages")]:
        (d / f"{name}.yaml").write_text(textwrap.dedent(TASK.format(name=name, data=data, messages=messages)))
    return d


def run_cli(include_dir, out_dir, ckpt, backend, tasks, extra=""):
    model_args = f"pretrained={ckpt},backend={backend},dtype=float32,max_new_tokens=8{extra}"
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "flex", "--model_args", model_args,
           "--tasks", tasks, "--include_path", str(include_dir), "--output_path", str(out_dir),
           "--log_samples", "--limit", "2", "--batch_size", "2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return proc


def read_outputs(out_dir, task):
    results = sorted(Path(out_dir).rglob("*_results.json"))
    samples = sorted(Path(out_dir).rglob(f"*_samples_{task}.jsonl"))
    assert results and samples, f"no results/samples for {task} under {out_dir}"
    res = json.loads(results[-1].read_text())
    rows = [json.loads(line) for line in samples[-1].read_text().splitlines() if line.strip()]
    return res, sorted(rows, key=lambda r: r["doc_id"])


def responses(rows):
    """The logged answers (lmms-eval 0.7.3 logs `filtered_resps`; no filters -> the raw text)."""
    out = []
    for r in rows:
        resp = r.get("resps", r.get("filtered_resps"))
        while isinstance(resp, list):
            resp = resp[0]
        out.append(resp)
    return out


# Every CLI run of this module, started two at a time (CI has 2 cores; most of a run's ~30 s is
# imports and start-up): name -> (checkpoint fixture, backend, tasks, extra model_args).
RUNS = {
    "vl_vllm": ("tiny_vl", "vllm", "flextest_image", ""),
    "vl_hf": ("tiny_vl", "hf", "flextest_image", ""),
    "omni_vllm": ("tiny_omni", "vllm", "flextest_audio,flextest_image", ",limit_mm_per_prompt=image=1;audio=1"),
    "omni_bad_media": ("tiny_omni", "hf", "flextest_badaudio", ""),
    "vl_audio": ("tiny_vl", "hf", "flextest_audio", ""),
}


@pytest.fixture(scope="module")
def runs(include_dir, tiny_vl, tiny_omni, tmp_path_factory):
    from concurrent.futures import ThreadPoolExecutor

    ckpts = {"tiny_vl": tiny_vl, "tiny_omni": tiny_omni}

    def one(name):
        ckpt, backend, tasks, extra = RUNS[name]
        out = tmp_path_factory.mktemp(name)
        return name, (run_cli(include_dir, out, ckpts[ckpt], backend, tasks, extra), out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, RUNS))


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_vl_image_task_runs(runs, backend):
    proc, out = runs[f"vl_{backend}"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    res, rows = read_outputs(out, "flextest_image")
    assert res["results"]["flextest_image"]["answered,none"] == 1.0, proc.stderr[-3000:]
    assert [r["doc_id"] for r in rows] == [0, 1]
    assert all(isinstance(t, str) and t for t in responses(rows))
    assert all(r["token_counts"][0]["output_tokens"] == 8 for r in rows)  # model_args max_new_tokens


def test_vl_engines_give_the_same_answers(runs):
    answers = {be: responses(read_outputs(runs[f"vl_{be}"][1], "flextest_image")[1]) for be in ("vllm", "hf")}
    assert answers["vllm"] == answers["hf"]
    assert answers["vllm"][0] != answers["vllm"][1]  # different images, different answers


def test_omni_audio_task_runs_on_vllm(runs):
    proc, out = runs["omni_vllm"]
    res, rows = read_outputs(out, "flextest_audio")
    assert res["results"]["flextest_audio"]["answered,none"] == 1.0, proc.stderr[-3000:]
    assert res["results"]["flextest_image"]["answered,none"] == 1.0  # Omni also takes images
    assert len(rows) == 2 and all(responses(rows))


def test_missing_media_fails_naming_doc_and_file(runs):
    proc, out = runs["omni_bad_media"]
    assert "/no/such/clip.wav" in proc.stderr and "task flextest_badaudio split test doc 0" in proc.stderr
    assert not list(out.rglob("*_results.json"))


def test_audio_task_on_vl_checkpoint_is_refused(runs):
    proc, _ = runs["vl_audio"]
    assert "audio input (task flextest_audio split test doc 0) cannot be sent to a Qwen2.5-VL" in proc.stderr
