"""The inference benchmark's workload as a `flex-judge judge` input (repo-only example).

    python examples/judge_speed_workload.py --n 256 --out /tmp/speed      # items.jsonl + images/
    flex-judge judge /tmp/speed/items.jsonl --model CKPT --pair-protocol vl_rewardbench --samples 1 \
        --max-new-tokens 512 --batch-size 256 --model-args "limit_mm_per_prompt=image:1;video:0"

Same requests as benchmarks/inference_gpu.py (benchmarks/gpu/task/utils.py: the VL-RewardBench
system prompt and template, one 448x448 image, question + two answers; VL-RewardBench sampling
temperature 0.6, top_p 0.95, seed 0), so the judgments/s that `flex-judge judge` prints compare
directly with that benchmark's raw-vLLM and lmms-eval numbers.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench_task():
    spec = importlib.util.spec_from_file_location("flexbench_task", REPO / "benchmarks" / "gpu" / "task" / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write(n: int, out: Path, words: int = 60, image: int = 448) -> Path:
    task = bench_task()
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for doc in task.make_docs(n, words, image):
        name = f"images/{doc['flex_item']}.png"
        task.doc_to_visual(doc)[0].save(out / name)
        rows.append({"id": doc["flex_item"], "mode": "pair", "question": doc["query"], "response_a": doc["answer1"],
                     "response_b": doc["answer2"], "images": [name]})
    path = out / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--words", type=int, default=60, help="words of question + two answers (benchmarks/inference_gpu.py: 60)")
    p.add_argument("--image", type=int, default=448)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    print(write(a.n, a.out, a.words, a.image))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
