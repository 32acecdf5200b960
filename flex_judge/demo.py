"""`flex-judge demo`: the whole product on an embedded default, on a CPU, in a few minutes.

1. build tiny random Qwen2.5-VL and Qwen2.5-Omni base checkpoints (offline, seconds);
2. SFT each into a tiny judge on the bundled text-only reasoning traces (trainer/, accelerate);
3. evaluate the judges with the real lmms-eval CLI on the bundled mini copies of every benchmark
   (VL judge on the vision tasks, Omni judge on the audio tasks, FLEX_JUDGE_DATA=fixtures);
4. collect the runs into the paper's tables (leaderboard) and print them.

Every step writes under --out (default runs/demo); a re-run reuses finished steps.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import trainer

TRAIN_CONFIG = Path(trainer.__file__).resolve().parent / "configs" / "tiny_cpu.yaml"
TRAIN_DATA = Path(trainer.__file__).resolve().parent / "data" / "demo_train.jsonl"
# family -> (lmms-eval tasks to run with that judge)
EVAL_PLAN = {"vl": "flex_vision", "omni": "flex_audio"}


def _step(msg: str) -> float:
    print(f"\n=== {msg}", flush=True)
    return time.perf_counter()


def build_judge(family: str, out: Path, force: bool) -> Path:
    from flex_models.tiny import make_tiny

    from trainer.train import main as train_main

    judge = out / f"judge-{family}" / "model"
    if judge.joinpath("config.json").exists() and not force:
        print(f"reusing {judge}")
        return judge
    base = make_tiny(family, out / f"base-{family}")
    # a fresh base each time: what an earlier (forced or interrupted) run left there is replaced
    rc = train_main(["--config", str(TRAIN_CONFIG), "--model", str(base), "--train_file", str(TRAIN_DATA),
                     "--output_dir", str(out / f"judge-{family}"), "--overwrite"])
    if rc != 0:
        raise SystemExit(f"training the tiny {family} judge failed (exit {rc})")
    return judge


def evaluate(family: str, judge: Path, out: Path, max_new_tokens: int) -> Path:
    run_dir = out / f"eval-{family}"
    env = dict(os.environ, FLEX_JUDGE_DATA="fixtures", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    cmd = [sys.executable, "-m", "flex_judge.lmms_main", "--model", "flex",
           # the judge was trained on prompts ending in '<think>\n' (the recipe's training data)
           "--model_args", f"pretrained={judge},max_new_tokens={max_new_tokens},assistant_prefix=<think>\\n",
           "--tasks", EVAL_PLAN[family], "--output_path", str(run_dir), "--log_samples"]
    print(" ".join(cmd), flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise SystemExit(f"lmms-eval failed for the {family} judge (exit {rc})")
    return run_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="flex-judge demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/demo", help="working folder (default: runs/demo)")
    p.add_argument("--families", default="vl,omni", help="judges to build and evaluate: vl, omni or both")
    p.add_argument("--max-new-tokens", type=int, default=96, help="judge output budget per item on the demo")
    p.add_argument("--force", action="store_true", help="retrain even if a judge already exists")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = [f for f in families if f not in EVAL_PLAN]
    if bad:
        p.error(f"--families: unknown {bad}; allowed: {sorted(EVAL_PLAN)}")

    runs = []
    for family in families:
        t = _step(f"[{family}] build + train a tiny judge on {TRAIN_DATA.name}")
        judge = build_judge(family, out, args.force)
        print(f"judge ready in {time.perf_counter() - t:.1f} s: {judge}")
        t = _step(f"[{family}] lmms-eval --model flex --tasks {EVAL_PLAN[family]} (bundled fixtures)")
        runs.append(evaluate(family, judge, out, args.max_new_tokens))
        print(f"evaluated in {time.perf_counter() - t:.1f} s")

    _step("leaderboard (paper layout; demo runs are flagged: tiny random judges on mini fixtures)")
    from flex_judge.leaderboard import main as leaderboard_main

    labels = ",".join(f"tiny-{f}-judge" for f in families)
    return leaderboard_main([*map(str, runs), "--labels", labels, "--out", str(out / "leaderboard")])


if __name__ == "__main__":
    raise SystemExit(main())
