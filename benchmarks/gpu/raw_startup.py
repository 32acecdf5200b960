"""A bare vLLM script's start-up: process launch -> `LLM()` ready, with the engine arguments the
`flex` model gives vLLM for the same checkpoint (flex_models.backends.vllm_backend.engine_kwargs).

This is what `startup_minus_raw_init_s` should be read against when the question is "what does
the adapter add to the script a user would otherwise write": that script pays Python's start,
`import vllm` and `LLM()` too. The time spent computing flex's engine arguments (importing
flex_models) is measured and left out of the raw script's start-up.

    python benchmarks/gpu/raw_startup.py --ckpt DIR --t-launch "$(date +%s.%N)" --out-json R.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T0 = time.time()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--t-launch", type=float, default=None, help="wall clock before the interpreter started")
    ap.add_argument("--family", default="vl")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--out-json", required=True)
    a = ap.parse_args()
    t_launch = a.t_launch or T0
    import vllm
    from vllm import LLM

    t_import = time.time()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from flex_models.args import parse_args
    from flex_models.backends.vllm_backend import engine_kwargs

    kw = engine_kwargs(parse_args(dict(pretrained=a.ckpt, backend="vllm", load_format="dummy", dtype="bfloat16",
                                       max_model_len=a.max_model_len)), a.family)
    t_kw = time.time()
    llm = LLM(**kw)
    t_ready = time.time()
    out = {"vllm": vllm.__version__, "engine_kwargs": {k: str(v) for k, v in kw.items()},
           "interpreter_start_s": round(T0 - t_launch, 3), "import_vllm_s": round(t_import - T0, 3),
           "flex_kwargs_s_excluded": round(t_kw - t_import, 3), "llm_init_s": round(t_ready - t_kw, 3),
           "launch_to_ready_s": round((t_ready - t_launch) - (t_kw - t_import), 3)}
    del llm
    Path(a.out_json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
