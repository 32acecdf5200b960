"""Build the `flex` model's engine while lmms-eval is still importing (`flex-judge eval`).

`start(args, checkpoint)` imports vLLM, then builds the backend on a background thread of this
process; the `flex` model lmms-eval constructs later with the same model_args takes it (`adopt`),
waiting for the build if it is still running. The engine build (weights, CUDA graphs, KV cache: vLLM does this in its own
engine process, so the thread mostly waits) then overlaps lmms-eval's imports, task index, the data
pre-flight and task loading. Nothing here is a pool or a protocol: one engine, the same object the
model would have built itself, handed over in-process. A build that fails is re-raised by `adopt`.
Measured: docs/benchmarks.md ("early engine").
"""
from __future__ import annotations

import threading

_early: dict = {}


def start(args, checkpoint) -> None:
    from flex_models.args import engine_view
    from flex_models.backends import make_backend

    discard()
    if args.backend == "vllm":
        # vLLM's import (~20 s on the GPU hosts) is CPU work under the GIL: on the thread it ran
        # against lmms-eval's imports and the two took 52 s (H200, 2026-12-03). Imported here first,
        # the thread's share is LLM(), which mostly waits for vLLM's engine process
        import vllm  # noqa: F401
    slot = {"view": engine_view(args), "backend": None, "error": None}

    def build():
        try:
            slot["backend"] = make_backend(args, checkpoint)
        except BaseException as e:  # noqa: BLE001 - handed to the model, which reports it
            slot["error"] = e

    slot["thread"] = threading.Thread(target=build, name="flex-early-engine", daemon=True)
    slot["thread"].start()
    _early["slot"] = slot


def adopt(args):
    """The early backend if it was started for these model_args, the harness's own (batch size,
    device) aside; else None, and an early engine for other settings is released first (one vLLM
    engine per process on CPU, where the engine runs in-process)."""
    from flex_models.args import engine_view

    slot = _early.get("slot")
    if slot is None:
        return None
    if slot["view"] != engine_view(args):
        discard()
        return None
    _early.pop("slot")
    slot["thread"].join()
    if slot["error"] is not None:
        raise slot["error"]
    return slot["backend"]


def discard() -> None:
    """Drop an early engine nobody adopted (a failed pre-flight, other model_args)."""
    slot = _early.pop("slot", None)
    if slot is not None:
        slot["thread"].join()  # the engine is released with its last reference
