"""Builds benchmarks/suite_profile_h200_results.{json,md} from the two device sessions of 2026-12-03.

Session 1 (14:55-15:05 UTC, `STAGES="sampler profile rawstart variants"`): its files were lost when the
machine was released between two polls; its numbers below are transcribed from the session's printed
output (this file keeps them as printed, with the bound formula the session used). Session 2
(15:19-15:26 UTC, `STAGES=variants`, graphs_1024 and seqs_512): its files are in this folder, and its
step logs are reduced here again with both bounds of benchmarks/gpu/steplog.py.
"""
import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "gpu"))
import steplog  # noqa: E402

PEAK = 989e12
S1 = {
    "when": "2026-12-03 14:55-15:05 UTC", "files": "lost (machine released between polls); values as printed",
    "copy_GBps": None,
    "sampler_top_p_kernel_ms": [  # apply_top_k_top_p_triton alone, fp32 [batch, 152064], top_p 0.95, temperature 0.6
        {"batch": 256, "logit_std": 0.001, "entropy_nats": 11.932, "kept_tokens": 144642.0, "ms": 1.631},
        {"batch": 256, "logit_std": 1.0, "entropy_nats": 10.539, "kept_tokens": 74672.6, "ms": 2.532},
        {"batch": 256, "logit_std": 2.0, "entropy_nats": 6.621, "kept_tokens": 7160.4, "ms": 1.141},
        {"batch": 256, "logit_std": 4.0, "entropy_nats": 2.011, "kept_tokens": 33.3, "ms": 1.038},
        {"batch": 1024, "logit_std": 0.001, "entropy_nats": 11.932, "kept_tokens": 144681.2, "ms": 6.246},
        {"batch": 1024, "logit_std": 1.0, "entropy_nats": 10.543, "kept_tokens": 74701.4, "ms": 9.75},
        {"batch": 1024, "logit_std": 2.0, "entropy_nats": 6.644, "kept_tokens": 7240.6, "ms": 4.304},
        {"batch": 1024, "logit_std": 4.0, "entropy_nats": 1.988, "kept_tokens": 31.1, "ms": 3.837}],
    "profile_stage": {
        "what": "VL family of the suite at scale 0.025 (1,697 requests), first engine of the session (cold "
                "compile); raw pass with the engine's torch profile of 10 steps after 300, then the flex pass",
        "startup_s": 96.55, "llm_init_s": 73.45, "max_num_seqs": 1024, "max_num_batched_tokens": 16384,
        "raw_s_profiled": 81.96, "flex_s": 73.43,
        "flex_step_profile_session_bound": {  # bound = (weights + KV) / copy bw + prefill tokens' FLOPs / peak
            "steps": 3439, "wall_s": 73.422, "preemptions": 0, "max_kv_usage": 0.3351, "encoder_inputs": 597,
            "phases": {
                "with_prefill": {"steps": 343, "wall_s": 31.811, "ms_per_step": 92.743, "mean_batch": 958.9,
                                 "mean_ctx_per_req": 1350.4, "decode_tok_s": 10285.0, "prefill_tokens": 415262,
                                 "bound_over_wall": 0.4122},
                "decode_full": {"steps": 149, "wall_s": 9.436, "ms_per_step": 63.327, "mean_batch": 1007.3,
                                "mean_ctx_per_req": 1344.1, "decode_tok_s": 15907.0, "bound_over_wall": 0.343},
                "decode_mid": {"steps": 944, "wall_s": 20.432, "ms_per_step": 21.644, "mean_batch": 321.3,
                               "mean_ctx_per_req": 1809.1, "decode_tok_s": 14845.4, "bound_over_wall": 0.5191},
                "decode_tail": {"steps": 2003, "wall_s": 11.743, "ms_per_step": 5.863, "mean_batch": 11.9,
                                "mean_ctx_per_req": 2927.6, "decode_tok_s": 2029.1, "bound_over_wall": 0.6514}},
            "bound_over_wall": 0.4713},
        "torch_profile_10_steps": {
            "steps": "10 engine steps after the first 300 of the raw pass: ~1,020 decodes each plus a small "
                     "prefill chunk (context 0-171 tokens)",
            "self_cuda_total_ms": 452.032,
            "per_step_ms": {"aten::mm (GEMMs)": 18.81, "FlashAttention-3 fwd": 18.65, "_topk_topp_kernel": 3.03,
                            "_gumbel_sample_kernel": 1.04, "aten::addmm": 1.46},
            "steps_ms_gpu": [50.5, 48.24, 47.43, 46.95, 46.7, 46.39, 46.31, 45.39, 44.83, 42.68]},
        "py_spy": "failed on the device (py-spy: 'No such file or directory'); no host profile",
    },
    "rawstart": {"what": "benchmarks/gpu/raw_startup.py, warm compile cache, flex's engine arguments",
                 "interpreter_start_s": 0.067, "import_vllm_s": 19.003, "llm_init_s": 16.869,
                 "launch_to_ready_s": 35.939},
    "variant_defaults": {
        "what": "fresh engine, warm compile cache, raw then flex pass on the same engine",
        "startup_s": 37.8, "llm_init_s": 18.2, "import_s": 4.3, "raw_s": 73.05, "flex_s": 73.75,
        "phases_raw": {"with_prefill": [304, 29.868, 98.249, 982.5], "decode_full": [176, 10.311, 58.587, 1010.3],
                       "decode_mid": [946, 21.174, 22.383, 323.2], "decode_tail": [2000, 11.712, 5.856, 11.9]},
        "phases_flex": {"with_prefill": [325, 32.274, 99.306, 955.5], "decode_full": [165, 9.871, 59.823, 1009.6],
                        "decode_mid": [947, 19.851, 20.962, 322.3], "decode_tail": [2000, 11.744, 5.872, 11.9]},
        "phases_columns": ["steps", "wall_s", "ms_per_step", "mean_batch"],
        "bound_over_wall_session_formula": {"raw": 0.4726, "flex": 0.4687}},
}


def session2() -> dict:
    out = {}
    for name in ("graphs_1024", "seqs_512"):
        d = json.loads((HERE / f"variant_{name}.json").read_text())
        p = d["parts"]["vl"]
        steps_file = HERE / f"var_{name}_steps.jsonl.gz"
        row = {"engine_defaults": p["engine_kwargs"].get("compilation_config") or f"max_num_seqs {p['max_num_seqs']}",
               "startup_s": round(p["startup_s"], 2), "llm_init_s": round(p["raw_init_s"], 2),
               "raw_s": round(p["passes"]["raw"]["wall_s"], 2), "copy_GBps": p["hw"]["copy_GBps"]}
        if steps_file.exists():  # the engine's step log (the variant's steps; the pass's are the last n)
            n = p["passes"]["raw"]["step_profile"]["steps"]
            st = [json.loads(x) for x in gzip.decompress(steps_file.read_bytes()).decode().splitlines()][-n:]
            row["step_profile"] = steplog.reduce(st, p["shape"], p["hw"]["copy_GBps"] * 1e9, PEAK, p["max_num_seqs"])
        out[name] = row
    return out


def main():
    res_path = HERE.parent / "suite_profile_h200_results.json"
    old = json.loads(res_path.read_text()) if res_path.exists() else {}
    s2 = session2()
    for k, v in s2.items():  # keep the reduction made when the step logs were here
        if "step_profile" not in v and k in old.get("session2", {}):
            v["step_profile"] = old["session2"][k].get("step_profile")
    out = {"machine": "nvidia-h200 (one H200 141 GB, 16 cores), vLLM 0.26.0, torch 2.11.0+cu130, Python 3.12.3",
           "workload": "benchmarks/suite_gpu.py --mode gpu --scale 0.025 --families vl (1,697 requests of the 10 "
                       "vision tasks, 7B VL shapes, random bf16 weights)",
           "peak_bf16_flops": PEAK, "session1": S1, "session2": s2}
    res_path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: {kk: v.get(kk) for kk in ("raw_s", "startup_s")} for k, v in s2.items()}))


if __name__ == "__main__":
    main()
