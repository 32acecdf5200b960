"""Real lmms-eval output folders for the leaderboard / compare / API tests, made once per process.

Two judges on the bundled fixtures (FLEX_JUDGE_DATA=fixtures), 2 runs per multi-run protocol
(FLEX_JUDGE_RUNS=2), 16 greedy tokens, one lmms-eval CLI invocation each, one after the other
(concurrently they are slower: the vLLM CPU engine's threads starve the other process):
  - A: the `flex` model (vLLM backend) on VL-RewardBench, MJ-Bench alignment, MLLM-as-a-Judge
       (score, pair, batch) and GenAI-Bench image;
  - B: lmms-eval's built-in `qwen2_5_vl` on MJ-Bench alignment and MLLM-as-a-Judge score + pair
       with --limit 3 (the first 3 items with all their runs: B covers fewer items than A, for
       the intersection / error cases).
The tiny checkpoints are random, so their outputs never parse; `doctor()` writes a copy of a run
whose per-item records carry seeded random parsed verdicts, for non-degenerate statistics.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
A_TASKS = "flex_vl_rewardbench,flex_mj_bench_alignment,flex_mllm_judge,flex_genai_bench_image"
B_TASKS = "flex_mj_bench_alignment,flex_mllm_judge_pair,flex_mllm_judge_score"
GEN = "max_new_tokens=16,temperature=0,do_sample=false"
_CACHE: dict = {}


def _env() -> dict:
    return dict(os.environ, FLEX_JUDGE_DATA="fixtures", FLEX_JUDGE_RUNS="2", HF_HUB_OFFLINE="1",
                HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def make_runs(tiny_vl: Path) -> dict:
    """{'a': folder, 'b': folder, 'root': tmp}: lmms-eval --output_path folders."""
    key = str(tiny_vl)
    if key in _CACHE:
        return _CACHE[key]
    root = Path(tempfile.mkdtemp(prefix="flex_lb_runs_"))
    cmds = {
        "a": ["--model", "flex", "--model_args", f"pretrained={tiny_vl},backend=vllm,dtype=float32,max_new_tokens=16",
              "--tasks", A_TASKS],
        "b": ["--model", "qwen2_5_vl", "--model_args", f"pretrained={tiny_vl},device_map=cpu", "--device", "cpu",
              "--tasks", B_TASKS, "--limit", "3", "--batch_size", "6"],
    }
    for name, args in cmds.items():
        with open(root / f"{name}.log", "w") as log:
            subprocess.run([sys.executable, "-m", "flex_judge.lmms_main", *args, "--gen_kwargs", GEN,
                            "--output_path", str(root / name), "--log_samples"],
                           cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, timeout=600)
        if not list((root / name).glob("*/*_results.json")):  # the CLI exits 0 on many errors
            raise RuntimeError(f"lmms-eval run {name} wrote no results; log tail:\n"
                               + (root / f"{name}.log").read_text()[-3000:])
    _CACHE[key] = {"a": root / "a", "b": root / "b", "root": root}
    return _CACHE[key]


LABELS = {"vlrb_better": [0, 1, None], "mj_pref": [0, 1, 2], "mllm_pair": ["A", "B", "C"],
          "genai_vote": ["leftvote", "rightvote", "tievote", "bothbad_vote"]}


def doctor(run_folder: Path, out: Path, seed: int, agree_with: Path | None = None, p_agree: float = 0.6) -> Path:
    """Copy a run folder and give every per-item record a seeded random *parsed* prediction
    (optionally copying ``agree_with``'s prediction with probability ``p_agree``, so two
    doctored runs are correlated). Results files are copied unchanged."""
    from flex_tasks.protocol import TASKS

    shutil.copytree(run_folder, out)
    rng = random.Random(seed)
    other = {}
    if agree_with is not None:
        for f in agree_with.glob("*/*_samples_*.jsonl"):
            for line in f.read_text().splitlines():
                row = json.loads(line)
                task = f.name.split("_samples_")[1][:-6]
                rec = row[TASKS[task].metric_names()[0][0]]
                other[(task, rec["item"], rec["run"])] = rec["pred"]
    for f in sorted(out.glob("*/*_samples_*.jsonl")):  # sorted: the rng stream must not depend on directory order
        task = f.name.split("_samples_")[1][:-6]
        spec = TASKS[task]
        lines = []
        for line in f.read_text().splitlines():
            row = json.loads(line)
            rec = dict(row[spec.metric_names()[0][0]])
            key = (task, rec["item"], rec["run"])
            if key in other and rng.random() < p_agree:
                pred = other[key]
            elif spec.parser in LABELS:
                pred = rng.choice(LABELS[spec.parser])
            elif spec.parser == "mllm_batch":
                pred = "".join(rng.sample("ABC", 3))
            else:
                pred = rng.randint(1, 5)
            rec.update(pred=pred, ok=True, how="answer")
            row[spec.metric_names()[0][0]] = rec  # the record lives under the first metric only
            lines.append(json.dumps(row))
        f.write_text("\n".join(lines) + "\n")
    return out
