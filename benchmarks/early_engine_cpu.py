#!/usr/bin/env python3
"""Start-up of `flex-judge eval` with and without the early engine (CPU, tiny checkpoint).

Runs the real CLI (`python -m flex_judge.lmms_main`) on the bundled VL-RewardBench fixtures with a
tiny VL checkpoint and vLLM's CPU engine, alternating FLEX_JUDGE_EARLY_ENGINE=1 / 0, and records
per run the wall time from launch to the last journaled judgment and to the process exit. On a CPU
only the ratio within one run of this script means anything; the GPU numbers are in
docs/benchmarks.md.

    python benchmarks/early_engine_cpu.py --reps 3 --out benchmarks/early_engine_cpu_results.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(ckpt: Path, early: bool, work: Path) -> dict:
    out = work / f"out-{int(early)}-{time.time_ns()}"
    env = dict(os.environ, FLEX_JUDGE_DATA="fixtures", FLEX_JUDGE_EARLY_ENGINE=str(int(early)),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    cmd = [sys.executable, "-m", "flex_judge.lmms_main", "--model_args",
           f"pretrained={ckpt},backend=vllm,dtype=float32,max_new_tokens=8",
           "--tasks", "flex_vl_rewardbench", "--limit", "2", "--output_path", str(out)]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    t1 = time.time()
    journal = out / "flex_journal" / "judgments.jsonl"
    if proc.returncode or not journal.exists():
        raise SystemExit(f"run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"early_engine": early, "last_judgment_s": journal.stat().st_mtime - t0, "exit_s": t1 - t0,
            "judgments": sum(1 for _ in journal.open())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", help="tiny VL checkpoint (default: built with flex_models.tiny)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", help="results JSON")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="flex-early-"))
    ckpt = Path(args.ckpt) if args.ckpt else None
    if ckpt is None:
        from flex_models.tiny import make_tiny

        ckpt = make_tiny("vl", work / "tiny-vl")
    runs = []
    for rep in range(args.reps):
        for early in (True, False) if rep % 2 == 0 else (False, True):  # alternate which goes first
            runs.append(dict(one_run(ckpt, early, work), rep=rep))
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for early in (True, False):
        rows = [r for r in runs if r["early_engine"] == early]
        summary["early" if early else "in_process"] = {
            k: statistics.median(r[k] for r in rows) for k in ("last_judgment_s", "exit_s")}
    summary["saved_to_last_judgment_s"] = (summary["in_process"]["last_judgment_s"]
                                           - summary["early"]["last_judgment_s"])
    res = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": f"{os.cpu_count()}-core CPU", "workload": "flex_vl_rewardbench fixtures, --limit 2 "
           "(10 judgments), tiny VL checkpoint, vLLM CPU engine, 8 new tokens", "runs": runs,
           "median": summary}
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
