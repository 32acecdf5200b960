"""The benchmarks' kernel-time breakdown (benchmarks/gpu/kernelprof.py) on the kernel names and
times of a real vLLM decode profile from an H200 (benchmarks/inference_gpu_h200_decode_profile.txt)."""
import re
import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
import kernelprof  # noqa: E402

PROFILE = REPO / "benchmarks" / "inference_gpu_h200_decode_profile.txt"


def _us(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", s)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]


def kernel_rows() -> list[tuple[str, float]]:
    """GPU kernels of the table: rows with no CPU time (the aten:: rows and the step marker are host ops)."""
    rows = []
    for line in PROFILE.read_text().splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) != 11 or not cols[2].endswith("s") or cols[0].startswith(("Name", "aten::", "execute_context")):
            continue
        if _us(cols[2]) == 0:
            rows.append((cols[0], _us(cols[6])))
    return rows


def test_decode_profile_categories_and_shares():
    rows = kernel_rows()
    assert len(rows) >= 15
    cats = {name: kernelprof.category(name) for name, _ in rows}
    assert cats["_topk_topp_kernel"] == "sampling" and cats["_gumbel_sample_kernel"] == "sampling"
    assert cats["triton_red_fused_fused_add_rms_norm_2"] == "fused_triton"
    assert cats["Memset (Device)"] == "copy_memset"
    for name, cat in cats.items():
        if "flash::" in name:
            assert cat == "attention", name
        if name.startswith("nvjet_") or "splitKreduce" in name:
            assert cat == "gemm", name
    b = kernelprof.breakdown(rows, wall_s=0.11152)
    total = sum(us for _, us in rows)
    assert b["kernel_ms"] == pytest.approx(total / 1e3, abs=1e-3)
    assert sum(v["share"] for v in b["by_category"].values()) == pytest.approx(1, abs=1e-3)
    # attention = the FlashAttention kernels + vLLM's KV-cache write (reshape_and_cache_flash_kernel)
    flash = sum(us for n, us in rows if "flash::" in n or n.startswith("void vllm::reshape_and_cache"))
    assert b["by_category"]["attention"]["ms"] == pytest.approx(flash / 1e3, abs=1e-3)
    assert list(b["by_category"])[0] == "gemm"  # the largest category first
    assert b["top_kernels"][0]["category"] == "attention" and len(b["top_kernels"]) == 8
    assert 0 < b["gpu_busy_share"] <= 1.1
