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


def make_backend(args, checkpoint):
    return backend_class(args.backend)(args, checkpoint)
