"""The `flex` model under lmms-eval's own multi-process launch: `accelerate launch -m lmms_eval` or
`torchrun [--nnodes N --node-rank R ...] -m lmms_eval`, one host or many.

lmms-eval shards the documents by rank, runs each rank's share through its model and gathers the
samples to rank 0, which computes the metrics and writes the results. From the model it needs
`rank`, `world_size`, an `accelerator` and a `device` (its evaluator gathers a few counters on
`lm.device` through `lm.accelerator`). Each rank of the `flex` model is one independent engine on
its own GPU group, tensor parallel inside the rank: local rank r of a host whose visible GPUs are
V, with tensor_parallel_size t, gets V[r*t:(r+1)*t].

Why each rank builds its own engine rather than vLLM's `external_launcher` (what lmms-eval's own
`vllm` model uses): that mode makes the launcher's world the engine's TP x DP world and runs the
engine inside the harness process, so a rank cannot hold a tensor-parallel engine of its own and
one slow rank stalls the others' decode steps. Independent engines share nothing; the harness's
collectives (a few counters and the samples) go over gloo, which needs no GPU and leaves each GPU
to its engine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from flex_models.errors import FlexJudgeError


@dataclass(frozen=True)
class Launch:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def launch_from_env(environ=os.environ) -> Launch | None:
    """The launcher's placement (torchrun and accelerate both set these), or None on one process."""
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    rank = int(environ.get("RANK", "0"))
    local_world = int(environ.get("LOCAL_WORLD_SIZE", world))
    return Launch(rank=rank, world_size=world, local_rank=int(environ.get("LOCAL_RANK", rank % local_world)),
                  local_world_size=local_world)


class PlacementError(FlexJudgeError, ValueError):
    """The launch asks for more GPUs than the host shows."""


def gpu_group(launch: Launch, tensor_parallel_size: int, visible: list[str]) -> list[str]:
    """The GPUs of this rank's engine. A launcher (or scheduler) that already narrowed each rank to
    exactly its group is kept as it is."""
    tp = max(1, tensor_parallel_size)
    if len(visible) == tp:
        return list(visible)
    need = launch.local_world_size * tp
    if len(visible) < need:
        raise PlacementError(
            f"{launch.local_world_size} ranks on this host x tensor_parallel_size={tp} need {need} GPUs; "
            f"{len(visible)} visible ({','.join(visible) or 'none'}). Launch fewer processes per node "
            "(--nproc-per-node / --num_processes) or lower tensor_parallel_size")
    return list(visible[launch.local_rank * tp:(launch.local_rank + 1) * tp])


def visible_gpus(environ=os.environ) -> list[str]:
    """Visible GPUs without initialising CUDA in this process (counted through NVML, as vLLM does:
    the engine process vLLM starts must not inherit an initialised CUDA context)."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g for g in listed.split(",") if g.strip()]
    from flex_models.backends.vllm_backend import gpu_count

    return [str(i) for i in range(gpu_count())]


def join(launch: Launch):
    """The harness's side of the launch: an accelerate `Accelerator` over gloo (CPU collectives only;
    the engines own the GPUs). Returns (accelerator, device)."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    return accelerator, accelerator.device


def pin_engine_gpus(launch: Launch, args) -> list[str]:
    """Restrict this rank's engine to its GPU group; returns the group ([] on a CPU host).

    vLLM chooses devices only by visibility (it has no device argument), and the engine processes it
    starts inherit this process's environment: so the group is written into CUDA_VISIBLE_DEVICES of
    this rank's process, before the engine is built, and nowhere else."""
    gpus = visible_gpus()
    if not gpus:
        return []
    group = gpu_group(launch, args.tensor_parallel_size, gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(group)
    return group
