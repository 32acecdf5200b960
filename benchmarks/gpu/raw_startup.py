"""A bare vLLM script's start-up: process launch -> `LLM()` ready, with the engine arguments the
`flex` model gives vLLM for the same checkpoint (flex_models.backends.vllm_backend.engine_kwargs).

This is what `startup_minus_raw_init_s` should be read against when the question is "what does
the adapter add to the script a user would otherwise write": that script pays Python's start,
`import vllm` and `LLM()` too. The time spent computing flex's engine arguments (importing
flex_models) is measured and left out of the raw script's start-up.

    python benchmarks/gpu/raw_startup.py --ckpt DIR --t-launch "$(date +%s.%N)" --out-json R.json

With `--requests FILE` (written by `suite_gpu.py --upstream-run`) it is also one upstream benchmark
script, run: after `LLM()`, one `generate` per task and run of that script, the prefix and
multimodal caches emptied before each (at full size one run of a task outgrows the KV cache, so run
k+1 finds little of run k; at the benchmark's scaled size everything would fit and hide that).
Loading the pickled requests stands in for the script's own data loading and is left out, as the
raw pass leaves out the requests' preparation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.time()


def run_calls(llm, path: Path) -> dict:
    import pickle

    t0 = time.time()
    with open(path, "rb") as fh:
        calls = pickle.load(fh)
    load_s = time.time() - t0
    per: list = []
    for task, run, reqs in calls:
        for name in ("reset_prefix_cache", "reset_mm_cache"):
            getattr(llm, name)()
        t1 = time.perf_counter()
        outs = llm.generate([p for p, _ in reqs], [sp for _, sp in reqs], use_tqdm=False)
        per.append({"task": task, "run": run, "requests": len(outs), "wall_s": round(time.perf_counter() - t1, 3),
                    "new_tokens": sum(len(c.token_ids) for o in outs for c in o.outputs)})
    return {"requests_file": path.name, "load_s_excluded": round(load_s, 3), "calls": per,
            "request_s": round(sum(c["wall_s"] for c in per), 3), "requests": sum(c["requests"] for c in per),
            "new_tokens": sum(c["new_tokens"] for c in per)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--t-launch", type=float, default=None, help="wall clock before the interpreter started")
    ap.add_argument("--family", default="vl")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--model-args", default="", help="JSON of the flex model_args (default: the GPU benchmark's)")
    ap.add_argument("--requests", default="", help="a benchmark script's generate calls (suite_gpu.dump_scripts)")
    ap.add_argument("--out-json", required=True)
    a = ap.parse_args()
    t_launch = a.t_launch or T0
    import vllm
    from vllm import LLM

    t_import = time.time()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from flex_models.args import parse_args
    from flex_models.backends.vllm_backend import engine_kwargs

    margs = json.loads(a.model_args) if a.model_args else dict(backend="vllm", load_format="dummy", dtype="bfloat16",
                                                                max_model_len=a.max_model_len)
    kw = engine_kwargs(parse_args(dict(margs, pretrained=a.ckpt)), a.family)
    t_kw = time.time()
    llm = LLM(**kw)
    t_ready = time.time()
    out = {"vllm": vllm.__version__, "engine_kwargs": {k: str(v) for k, v in kw.items()},
           "interpreter_start_s": round(T0 - t_launch, 3), "import_vllm_s": round(t_import - T0, 3),
           "flex_kwargs_s_excluded": round(t_kw - t_import, 3), "llm_init_s": round(t_ready - t_kw, 3),
           "launch_to_ready_s": round((t_ready - t_launch) - (t_kw - t_import), 3)}
    if a.requests:
        out.update(run_calls(llm, Path(a.requests)))
        out["launch_to_done_s"] = round(out["launch_to_ready_s"] + out["request_s"], 3)
    del llm
    Path(a.out_json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
