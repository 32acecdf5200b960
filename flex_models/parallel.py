"""Data parallel over N single-GPU vLLM engines: shard requests, run one worker per GPU, merge.

`shard` and `merge` are pure (unit-tested on CPU). `run_data_parallel` starts one subprocess
per shard (`python -m flex_models.parallel WORKDIR RANK`) with CUDA_VISIBLE_DEVICES set to its
GPU; each builds its own engine, generates its shard in one call and pickles the outputs back.
It needs N GPUs, so it is not exercised by the CPU test suite.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path


def shard(n_items: int, n_workers: int) -> list[list[int]]:
    """Strided shards (item i -> worker i % n) so long and short requests spread evenly."""
    if n_workers < 1:
        raise ValueError(f"n_workers={n_workers} must be >= 1")
    return [list(range(w, n_items, n_workers)) for w in range(n_workers)]


def merge(shards: list[list[int]], results: list[list], n_items: int) -> list:
    """Put each shard's results back at their original positions; checks coverage."""
    if len(shards) != len(results):
        raise ValueError(f"{len(shards)} shards but {len(results)} result lists")
    out: list = [None] * n_items
    seen = [False] * n_items
    for idx, res in zip(shards, results):
        if len(idx) != len(res):
            raise ValueError(f"a shard of {len(idx)} requests returned {len(res)} results")
        for i, r in zip(idx, res):
            if seen[i]:
                raise ValueError(f"request {i} appears in two shards")
            seen[i], out[i] = True, r
    missing = [i for i, s in enumerate(seen) if not s]
    if missing:
        raise ValueError(f"requests {missing[:5]} were in no shard")
    return out


def _gpu_groups(n_workers: int, tp: int) -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(n_workers * tp)]
    if len(gpus) < n_workers * tp:
        raise ValueError(f"data_parallel_size={n_workers} x tensor_parallel_size={tp} needs "
                         f"{n_workers * tp} GPUs; CUDA_VISIBLE_DEVICES has {len(gpus)}")
    return [",".join(gpus[w * tp:(w + 1) * tp]) for w in range(n_workers)]


def run_data_parallel(args, checkpoint, prepared: list, n_workers: int, progress: bool = True) -> list:
    """Generate `prepared` on `n_workers` engines (one per GPU group); outputs in request order."""
    shards = [s for s in shard(len(prepared), n_workers)]
    worker_args = replace(args, data_parallel_size=1)
    groups = _gpu_groups(n_workers, args.tensor_parallel_size)
    with tempfile.TemporaryDirectory(prefix="flex_dp_") as tmp:
        work = Path(tmp)
        procs = []
        for rank, idx in enumerate(shards):
            with open(work / f"in_{rank}.pkl", "wb") as f:
                pickle.dump((worker_args, checkpoint, [prepared[i] for i in idx], progress and rank == 0), f)
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=groups[rank])
            procs.append(subprocess.Popen([sys.executable, "-m", "flex_models.parallel", tmp, str(rank)], env=env))
        codes = [p.wait() for p in procs]
        bad = [r for r, c in enumerate(codes) if c != 0]
        if bad:
            raise RuntimeError(f"data-parallel workers {bad} failed (exit codes {[codes[r] for r in bad]})")
        results = [pickle.loads((work / f"out_{rank}.pkl").read_bytes()) for rank in range(n_workers)]
    return merge(shards, results, len(prepared))


def _worker(workdir: str, rank: int) -> int:
    from flex_models.backends import make_backend

    work = Path(workdir)
    args, checkpoint, prepared, progress = pickle.loads((work / f"in_{rank}.pkl").read_bytes())
    outputs = make_backend(args, checkpoint).generate(prepared, progress=progress) if prepared else []
    (work / f"out_{rank}.pkl").write_bytes(pickle.dumps(outputs))
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1], int(sys.argv[2])))
