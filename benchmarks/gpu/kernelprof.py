"""Where a GPU step's time goes: kernel time from a torch.profiler run, by category.

    with torch.profiler.profile(activities=[...CPU, ...CUDA]) as prof:
        step()
    kernelprof.summary(prof, wall_s)

Categories are matched on the kernel name, first match wins (flash-attention kernels are cutlass
templates, so attention is tested before GEMM). Used for the trainer steps (train_gpu.py --profile)
and usable on vLLM's decode-step tables (inference_gpu_h200_decode_profile.txt).
"""
from __future__ import annotations

CATEGORIES = (
    ("attention", ("flash", "fmha", "attn")),
    ("cross_entropy", ("cross_entropy", "crossentropy", "nll_loss", "log_softmax", "logsumexp")),
    ("sampling", ("topk_topp", "gumbel", "_sample_kernel", "temperature_kernel")),
    ("optimizer", ("adam", "multi_tensor_apply", "foreach")),
    ("gemm", ("gemm", "nvjet", "cutlass", "xmma", "cublas", "splitkreduce", "matmul", "wgmma")),
    ("fused_triton", ("triton",)),
    ("copy_memset", ("memcpy", "memset", "copy_kernel", "cat_batched", "catarray")),
    ("nccl", ("nccl",)),
)


def category(name: str) -> str:
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def device_kernels(prof) -> list[tuple[str, float]]:
    """(kernel name, self GPU time in microseconds) for each kernel kind in a finished profile."""
    out = []
    for e in prof.key_averages():
        if "cuda" not in str(getattr(e, "device_type", "")).lower():
            continue
        if getattr(e, "is_user_annotation", False):  # record_function ranges (Optimizer.step#...) span kernels
            continue
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = getattr(e, "self_cuda_time_total", 0.0)
        if us:
            out.append((e.key, float(us)))
    return out


def breakdown(kernels: list[tuple[str, float]], wall_s: float | None = None, top: int = 8) -> dict:
    """Kernel time per category (ms and share of all kernel time); with the step's wall time also
    the share of it the GPU ran kernels (kernels on one stream: 1 - busy = host gaps)."""
    total = sum(us for _, us in kernels)
    cats: dict[str, float] = {}
    for name, us in kernels:
        c = category(name)
        cats[c] = cats.get(c, 0.0) + us
    out = {"kernel_ms": round(total / 1e3, 3),
           "by_category": {c: {"ms": round(us / 1e3, 3), "share": round(us / total, 4) if total else None}
                           for c, us in sorted(cats.items(), key=lambda kv: -kv[1])},
           "top_kernels": [{"name": n[:90], "ms": round(us / 1e3, 3), "category": category(n)}
                           for n, us in sorted(kernels, key=lambda kv: -kv[1])[:top]]}
    if wall_s:
        out["wall_ms"] = round(wall_s * 1e3, 3)
        out["gpu_busy_share"] = round(total / 1e6 / wall_s, 4)
    return out


def summary(prof, wall_s: float | None = None) -> dict:
    """breakdown() of a finished torch.profiler run's GPU kernels."""
    return breakdown(device_kernels(prof), wall_s)


def profile_activities():
    import torch

    acts = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    return acts
