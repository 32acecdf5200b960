"""Adapter overhead of the `flex` model: the flex path vs `LLM.generate` alone on the same engine.

64 VL-RewardBench-shaped requests (protocol system prompt, a 448x448 PIL image, question and two
answers; 8 distinct images, each judged by 8 requests as in multi-run protocols) go through the
REAL lmms-eval path: `FlexJudge.generate_until` on lmms-eval `Instance`s with a task_dict, tiny
VL checkpoint, vLLM CPU engine, greedy, max_new_tokens 32.

raw = one `LLM.generate` call on prompts whose media were decoded beforehand; flex = the whole
`generate_until` (rendering, media decoding as requests enter the engine, vLLM's engine loop, outputs),
without and with the resume journal. Settings are interleaved, each repeated, medians reported.

usage: python benchmarks/adapter_overhead.py [--requests 64] [--out benchmarks/adapter_overhead_results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TASK, SPLIT = "bench_vlrb", "test"


def make_docs(n: int, n_images: int = 8, png_dir: Path | None = None):
    """Docs with PIL images (as tasks pass them) or, with png_dir, PNG file paths to decode."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    images = [Image.fromarray((rng.rand(448, 448, 3) * 255).astype("uint8")) for _ in range(n_images)]
    if png_dir is not None:
        paths = []
        for k, im in enumerate(images):
            im.save(png_dir / f"img{k}.png")
            paths.append(str(png_dir / f"img{k}.png"))
        images = paths
    return [{"image": images[i % n_images], "query": f"What is shown in picture {i % n_images}?",
             "answer1": "A cat sitting on a red sofa next to a window. " * 3,
             "answer2": "A dog lying on a blue carpet in a dark room. " * 3, "flex_seed": i % 5}
            for i in range(n)]


def _messages_fn():
    from flex_tasks.protocol import protocols

    system = protocols()["vl_rewardbench"]["system"]

    def fn(doc):
        text = (f"\n\n[Question]\n{doc['query']}\n\n[Assistant 1's Answer]\n{doc['answer1']}\n\n"
                f"[Assistant 2's Answer]\n{doc['answer2']}")
        return [{"role": "system", "content": [{"type": "text", "text": system}]},
                {"role": "user", "content": [{"type": "image", "url": doc["image"]}, {"type": "text", "text": text}]}]

    return fn


def instances(n: int, gen_kwargs: dict):
    from lmms_eval.api.instance import Instance

    fn = _messages_fn()
    return [Instance(request_type="generate_until", arguments=("", fn, dict(gen_kwargs), i, TASK, SPLIT), idx=0,
                     metadata={"task": TASK, "doc_id": i, "repeats": 1}) for i in range(n)]


def machine() -> dict:
    import torch
    import vllm

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "vllm": vllm.__version__, "platform": platform.platform(), "loadavg_1m_at_end": load[0] if load else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each setting, interleaved (median kept)")
    ap.add_argument("--checkpoint", help="tiny VL checkpoint dir (default: build one in a temp dir)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("adapter_overhead_results.json")))
    args = ap.parse_args(argv)

    import statistics

    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt
    from flex_models.model import FlexJudge
    from flex_models.tiny import make_tiny

    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint or str(make_tiny("vl", Path(tmp.name) / "vl"))
    t = time.perf_counter()
    model = FlexJudge(pretrained=ckpt, backend="vllm", dtype="float32", journal="off")
    build_s = time.perf_counter() - t
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": 0, "until": []}
    model.task_dict = {TASK: {SPLIT: make_docs(4)}}
    model.generate_until(instances(4, gen))  # warm-up (first-call allocations, processor caches)

    scenarios = {}
    for name, png_dir in (("pil_images", None), ("png_paths", Path(tmp.name))):
        docs = make_docs(args.requests, png_dir=png_dir)
        model.task_dict = {TASK: {SPLIT: docs}}
        reqs = instances(args.requests, gen)
        fn = _messages_fn()
        times: dict = {"raw_vllm": [], "flex": [], "flex_journal": []}
        tokens = {}
        for rep in range(args.reps):
            # (a) vLLM alone: the same prompts and decoded media, built outside the timer, one LLM.generate
            prepared = [model.prepare(fn(d), where=str(i), doc=d, gen_kwargs=gen) for i, d in enumerate(docs)]
            prompts, params = [vllm_prompt(p) for p in prepared], [sampling_params(p.spec) for p in prepared]
            t = time.perf_counter()
            raw = model.backend.llm.generate(prompts, params, use_tqdm=False)
            times["raw_vllm"].append(time.perf_counter() - t)
            tokens["raw_vllm"] = [list(o.outputs[0].token_ids) for o in raw]
            # (b) the flex model on lmms-eval Instances: render, decode, stream, results
            for key, journal in (("flex", "off"), ("flex_journal", str(Path(tmp.name) / f"j_{name}_{rep}"))):
                model.args.journal = journal
                t = time.perf_counter()
                results = model.generate_until(reqs)
                times[key].append(time.perf_counter() - t)
                tokens[key] = sum(r.token_counts.output_tokens for r in results)
        med = {k: statistics.median(v) for k, v in times.items()}
        scenarios[name] = {
            "wall_s_median": {k: round(v, 4) for k, v in med.items()},
            "wall_s_all": {k: [round(x, 4) for x in v] for k, v in times.items()},
            "generated_tokens": tokens["flex"],
            "flex_over_raw": round(med["raw_vllm"] / med["flex"], 4),
            "flex_journal_over_flex": round(med["flex"] / med["flex_journal"], 4),
            "adapter_share_of_wall": round((med["flex"] - med["raw_vllm"]) / med["flex"], 4),
        }
        print(f"{name}: raw vLLM {med['raw_vllm']:.3f} s, flex {med['flex']:.3f} s, flex+journal "
              f"{med['flex_journal']:.3f} s -> flex/raw throughput {scenarios[name]['flex_over_raw']:.3f}, "
              f"journal cost {100 * (1 - scenarios[name]['flex_journal_over_flex']):.1f}%", file=sys.stderr)
    report = {
        "requests": args.requests, "max_new_tokens": args.max_new_tokens, "reps": args.reps, "distinct_images": 8,
        "image_size": [448, 448], "engine_build_s": round(build_s, 3), "target_share": 0.05,
        "scenarios": scenarios, "machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "note": ("one process, settings interleaved, median of reps; flex/raw is a throughput ratio on the same "
                 "engine (raw gets its inputs pre-decoded: flex's rendering + media decoding + journal are the "
                 "overhead). CPU timings only compare within this run."),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
