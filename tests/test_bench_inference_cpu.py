"""CPU smoke of benchmarks/inference_gpu.py: every measured path runs end to end on a tiny checkpoint.

(a) the flex model through lmms-eval's CLI, (b) vLLM alone, (c) lmms-eval's qwen2_5_vl peer,
(d) the roofline arithmetic; 4 judgments x 8 new tokens, the three processes at once (~75 s on
2 cores). The numbers are meaningless on a CPU; the test checks that each path produced them.
"""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (importlib.util.find_spec("vllm") and importlib.util.find_spec("lmms_eval")),
                       reason="needs vllm (CPU build) and lmms-eval"),
]

N, T = 4, 8


@pytest.fixture(scope="module")
def smoke(tiny_vl, tmp_path_factory):
    work = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(REPO / "benchmarks" / "inference_gpu.py"), "--mode", "smoke",
           "--ckpt", str(tiny_vl), "--n", str(N), "--max-tokens", str(T), "--workdir", str(work),
           "--out-json", str(work / "r.json"), "--out-md", str(work / "r.md")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=170)
    assert (work / "r.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads((work / "r.json").read_text()), (work / "r.md").read_text()


def test_all_parts_ran(smoke):
    proc, out, _ = smoke
    failed = {k: v.get("error") for k, v in out["parts"].items() if not v.get("ok")}
    assert not failed, f"{failed}\n{proc.stdout[-3000:]}"
    assert proc.returncode == 0


def test_raw_engine_generates_exactly_max_tokens(smoke):
    _, out, _ = smoke
    raw = out["parts"]["raw"]["runs"]
    assert raw["main"]["requests"] == N and N <= raw["main"]["out_tokens"] <= N * T  # EOS honoured, as flex does
    assert raw["main"]["sampling"]["seed"] is None  # flex sends no per-request seed (the engine is seeded)
    assert "ignore_eos=False" in raw["main"]["sampling"]["flex_sampling_params"]
    assert raw["prefill_only"]["out_tokens"] == N
    assert raw["main"]["prompt_tokens_mean"] > 300  # system + question + answers + image


def test_flex_through_lmms_eval(smoke):
    _, out, _ = smoke
    run = out["parts"]["flex"]["runs"][0]
    assert run["ok"] and run["requests"] == N and run["engine_calls"] == 1
    assert N <= run["out_tokens"] <= N * T
    # same prompts as the raw engine: flex renders exactly the benchmark's prompt
    assert run["prompt_tokens_mean"] == out["parts"]["raw"]["runs"]["main"]["prompt_tokens_mean"]
    row = out["summary"]["rows"]["flex"]
    assert row["judgments_per_s"] > 0 and row["ttfr_launch_s"] > row["ttfr_submit_s"] > 0
    st = row["startup_breakdown_s"]  # where lmms-eval's start-up goes, from probes on the real calls
    assert st["task_load"] > 0 and st["python_imports"] > 0
    # the engine is built in the lmms-eval process, when lmms-eval builds the model (no worker, no pool)
    assert st["model_init"] > 0 and st["engine_init"] is not None and st["engine_init"] <= st["model_init"] + 1e-6
    assert row["engine_wait_in_evaluate_s"] == 0.0


def test_peer_and_summary(smoke):
    _, out, md = smoke
    rows = out["summary"]["rows"]
    # two batch sizes in one process (lmms-eval frees the model after each evaluate)
    assert [r["batch_size"] for r in rows["peer"]["all_batch_sizes"] if r.get("judgments_per_s")] == [2, 4]
    assert rows["peer"]["n"] == N
    assert {"flex_over_raw", "flex_over_peer", "decode_over_roofline"} <= set(out["summary"]["targets"])
    assert out["flex_over_raw"] == out["summary"]["targets"]["flex_over_raw"]["value"] > 0
    assert "dp_speedup" in out  # None: one engine here
    # decode rate = main run - prefill-only run: may come out None under CPU contention
    assert out["summary"]["targets"]["decode_over_roofline"]["target"] == 0.5
    dec = out["summary"]["roofline"]["decode"]["measured_3.0TBps"]
    assert dec["bound"] in ("memory", "compute") and dec["tokens_per_s"] > 0
    assert "| (a) flex via lmms-eval CLI |" in md and "| target |" in md
