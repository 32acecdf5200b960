"""Generation backends behind one small interface, chosen by name -> "module:Class".

A backend is built once per model (`Backend(args, checkpoint)`) and answers
`generate(prepared: list[Prepared], progress: bool) -> list[Output]` in request order.
Heavy imports (vllm, torch models) happen only when a backend is built.
"""
from __future__ import annotations

import importlib

BACKENDS = {
    "vllm": "flex_models.backends.vllm_backend:VLLMBackend",
    "hf": "flex_models.backends.hf_backend:HFBackend",
}


def backend_class(name: str):
    if name not in BACKENDS:
        raise ValueError(f"model_args backend={name!r}; allowed: {', '.join(BACKENDS)}, auto")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


# vLLM's own data parallelism (model_args data_parallel_size > 1) lives in its async engine.
ASYNC_VLLM = "flex_models.backends.vllm_async:AsyncVLLMBackend"


def make_backend(args, checkpoint):
    if args.backend == "vllm" and args.data_parallel_size > 1:
        module, cls = ASYNC_VLLM.split(":")
        return getattr(importlib.import_module(module), cls)(args, checkpoint)
    return backend_class(args.backend)(args, checkpoint)
