#!/usr/bin/env python3
"""Inference benchmark of Flex-VL-7B-shaped judging: the `flex` model through lmms-eval vs vLLM
alone vs lmms-eval's built-in `qwen2_5_vl` peer vs the roofline.

Workload: N VL-RewardBench-shaped judgments (the protocol's system prompt, one 448x448 image,
question + two answers; benchmarks/gpu/task), temperature 0.6, top_p 0.95, max_new_tokens T.
  (a) flex   the `flex` model (vLLM backend) through lmms-eval's CLI (flex_judge.lmms_main)
  (b) raw    vLLM alone with the flex model's engine kwargs on the same prompts + images
  (c) peer   lmms-eval's `qwen2_5_vl` (transformers generate), several batch sizes
  (d) roofline of the same shapes (benchmarks/gpu/roofline.py)
  hostprof  image vs text-only requests of the same length on one engine: decode rates and py-spy
          samples of the engine-core and front-end processes while each decodes (gpu/hostprof.py)
  sweep   engine-setting variants on the same requests (--sweep), A/B probes inside the flex
          process (--ab), a torch profile of decode steps (--profile-dir), 2-GPU runs via
          --flex-arg data_parallel_size=2 / tensor_parallel_size=2 and --tag (benchmarks/gpu/x2_call.sh)
Each measurement runs in its own process; peak GPU memory is polled from NVML meanwhile (all GPUs).
The results JSON carries flex_over_raw and dp_speedup at its top level (None when not measured).

  GPU (device tool, vLLM bundle staged; see benchmarks/gpu/README.md):
    python benchmarks/inference_gpu.py --mode gpu --parts hw,peer --out-json $OUT/a.json
    python benchmarks/inference_gpu.py --mode gpu --parts flex,raw --out-json $OUT/b.json
    python benchmarks/inference_gpu.py --merge a.json b.json --out-json R.json --out-md R.md
  CPU smoke (tiny checkpoint, vLLM CPU, 4 requests x 8 tokens; tests/test_bench_inference_cpu.py):
    python benchmarks/inference_gpu.py --mode smoke --out-json /tmp/r.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "gpu"))

import roofline  # noqa: E402

MODES = {
    "gpu": dict(n=256, max_tokens=512, words=60, image=448, peer_runs="32:32,64:64,128:128",
                parts="hw,peer,raw,flex", ckpt="7b", part_timeout=420),
    "smoke": dict(n=4, max_tokens=8, words=60, image=448, peer_runs="2:4,4:4",
                  parts="raw,flex,peer", ckpt="tiny", part_timeout=240),
}
SAMPLING = dict(temperature=0.6, top_p=0.95, seed=0)  # protocol sampling; seed = flex's default
FLEX_ARGS = {"backend": "vllm", "limit_mm_per_prompt": "image:1;video:0"}  # VL-RewardBench: 1 image
TARGETS = {"flex_over_raw": 0.97, "flex_over_peer": 10.0, "decode_over_roofline": 0.5, "dp_speedup": 1.85}
TARGETS["startup_minus_raw_init_s"] = 15.0
LOWER_IS_BETTER = {"startup_minus_raw_init_s"}
# engine settings tried by the `sweep` part (each on top of flex's engine_kwargs; see docs/benchmarks.md)
SWEEP = [{"name": "fp8_kv", "kv_cache_dtype": "fp8"}, {"name": "block_128", "block_size": 128},
         {"name": "no_prefix_caching", "enable_prefix_caching": False},
         {"name": "batched_tokens_64k", "max_num_batched_tokens": 65536}]


# ----------------------------------------------------------------------------- processes
class GpuMemPoller:
    """Peak device memory in use (all processes) while a worker runs, via NVML."""

    def __init__(self, period: float = 0.1):
        self.period, self.peak, self.base = period, None, None
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            hs = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self._read = lambda: [pynvml.nvmlDeviceGetMemoryInfo(h).used for h in hs]
        except Exception:
            self._read = None

    def __enter__(self):
        if self._read:
            self.base = self.peak = self._read()
            self._t = threading.Thread(target=self._loop, daemon=True)
            self._t.start()
        return self

    def _loop(self):
        while not self._stop.wait(self.period):
            self.peak = [max(a, b) for a, b in zip(self.peak, self._read())]

    def __exit__(self, *exc):
        self._stop.set()
        if self._read:
            self._t.join()
            self.peak = [max(a, b) for a, b in zip(self.peak, self._read())]


class Worker:
    """One measurement in its own process (benchmarks/gpu/workers.py), its log and its result."""

    def __init__(self, worker: str, spec: dict, workdir: Path, log_dir: Path, timeout: float, tag: str):
        self.tag, self.timeout = tag, timeout
        self.spec = dict(spec, worker=worker, tag=tag, result_path=str(workdir / f"result-{tag}.json"))
        spec_path = workdir / f"spec-{tag}.json"
        spec_path.write_text(json.dumps(self.spec, indent=1))
        Path(self.spec["result_path"]).unlink(missing_ok=True)
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   HF_DATASETS_CACHE=str(workdir / f"hf-datasets-{tag}"))
        path = [str(REPO)] + ([spec["stubs"]] if spec.get("stubs") else []) + [env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
        self.log = log_dir / f"{tag}.log"
        print(f"[bench] {tag}: starting ({worker}), log {self.log}", flush=True)
        self.mem = GpuMemPoller().__enter__()
        self.spawn = time.time()
        self._fh = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_worker", str(spec_path)],
                                     stdout=self._fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def result(self) -> dict:
        try:
            rc = self.proc.wait(timeout=max(1.0, self.spawn + self.timeout - time.time()))
        except subprocess.TimeoutExpired:
            rc = "timeout"
        try:  # also any engine process the worker left behind (it ends with os._exit)
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait()
        time.sleep(0.5 if self.mem.base is None else 3)  # let the driver release the memory
        self.mem.__exit__(None, None, None)
        self._fh.close()
        res = {"ok": False, "error": f"worker exit {rc}, no result (see {self.log.name})"}
        if Path(self.spec["result_path"]).exists():
            res = json.loads(Path(self.spec["result_path"]).read_text())
        # every GPU on the machine (NVML ignores CUDA_VISIBLE_DEVICES); the headline is the busiest one
        res.update(spawn=self.spawn, exit=time.time(), rc=rc, log=self.log.name,
                   gpu_mem_peak_bytes=max(self.mem.peak) if self.mem.peak else None,
                   gpu_mem_peak_bytes_per_gpu=self.mem.peak, gpu_mem_base_bytes_per_gpu=self.mem.base)
        status = "ok" if res.get("ok") else f"FAILED: {res.get('error', '')[:300]}"
        print(f"[bench] {self.tag}: {status} ({time.time() - self.spawn:.1f} s)", flush=True)
        if not res.get("ok"):
            print("".join(open(self.log, errors="replace").readlines()[-25:]), flush=True)
        return res


def run_worker(*args) -> dict:
    return Worker(*args).result()


def _model_args_str(d: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in d.items())


def measure(args) -> dict:
    cfg = MODES[args.mode]
    t_start = time.time()
    workdir = Path(args.workdir or (tempfile.mkdtemp(prefix="flexbench-")))
    workdir.mkdir(parents=True, exist_ok=True)
    log_dir = Path(args.log_dir or workdir)
    log_dir.mkdir(parents=True, exist_ok=True)
    parts = [p for p in (args.parts or cfg["parts"]).split(",") if p]
    n, T = args.n or cfg["n"], args.max_tokens or cfg["max_tokens"]
    common = dict(n=n, max_tokens=T, words=args.words or cfg["words"], image=cfg["image"],
                  workdir=str(workdir), **SAMPLING)
    timeout = args.part_timeout or cfg["part_timeout"]
    out = {"meta": {"mode": args.mode, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine_kind": args.machine_kind, "workload": dict(common, parts=parts)}, "parts": {}}

    need_weights = args.mode == "gpu" or any(p in parts for p in ("peer", "raw", "flex", "sweep", "hostprof"))
    ck_spec = {"kind": cfg["ckpt"], "root": str(workdir), "weights": need_weights}
    if args.ckpt:  # a ready checkpoint (e.g. the tests' tiny_vl fixture)
        ck = {"ok": True, "path": str(Path(args.ckpt).resolve()), "given": True}
    elif args.mode == "smoke":  # tiny: seconds, and this process imports transformers anyway
        import workers

        t0 = time.time()
        ck = dict(workers.run_ckpt(ck_spec), ok=True, spawn=t0, exit=time.time())
    else:  # 7b random weights are made on the GPU: keep that CUDA context out of this process
        ck = run_worker("ckpt", ck_spec, workdir, log_dir, timeout, "ckpt")
    out["parts"]["ckpt"] = ck
    if not ck.get("ok"):
        return out
    ckpt = ck["path"]
    flex_args = dict(pretrained=ckpt, **FLEX_ARGS, **args.flex_arg)
    _save(out, args)
    jobs = []
    for part in parts:
        if part == "hw":
            job = ("hw", {})
        elif part == "raw":
            job = ("raw", dict(common, model_args=flex_args, profile_dir=args.profile_dir,
                               raw_runs=args.raw_runs.split(",")))
        elif part == "flex":
            job = ("lmms", dict(common, model="flex", model_args_str=_model_args_str(flex_args), ab=args.ab))
        elif part == "sweep":
            job = ("sweep", dict(common, model_args=flex_args, variants=args.sweep, deadline=t_start + args.sweep_budget_s,
                                 ignore_eos=args.sweep_ignore_eos, **({"n": args.sweep_n} if args.sweep_n else {})))
        elif part == "peer":
            job = ("lmms", dict(common, model="qwen2_5_vl", **_peer_spec(args, cfg, ckpt)))
        elif part == "hostprof":
            job = ("hostprof", dict(common, model_args=flex_args, log_dir=str(log_dir), detokenize=args.hostprof_detokenize,
                                    **({"n": args.hostprof_n} if args.hostprof_n else {})))
        else:
            raise SystemExit(f"unknown part {part!r}; allowed: hw, raw, flex, peer, sweep, hostprof")
        jobs.append((part + args.tag, job))
    if args.parallel:  # CPU smoke only: timings are meaningless there, wall time is what matters
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        started = [(part, Worker(w, spec, workdir, log_dir, timeout, part)) for part, (w, spec) in jobs]
        out["meta"]["shapes"] = _shapes(ckpt)
        for part, wk in started:
            out["parts"][part] = wk.result()
        _save(out, args)
    if not args.parallel:
        out["meta"]["shapes"] = _shapes(ckpt)
    for part, (w, spec) in ([] if args.parallel else jobs):
        t = timeout if w != "sweep" else max(60.0, spec["deadline"] + 60 - time.time())
        out["parts"][part] = run_worker(w, spec, workdir, log_dir, t, part)
        _save(out, args)
    return out


def _peer_spec(args, cfg, ckpt: str) -> dict:
    import importlib.util

    pc = json.loads((Path(ckpt) / "processor_config.json").read_text())["image_processor"]["size"]
    on_gpu = args.mode == "gpu"
    margs = dict(pretrained=ckpt, device_map="cuda" if on_gpu else "cpu", attn_implementation="sdpa",
                 min_pixels=pc["shortest_edge"], max_pixels=pc["longest_edge"])
    runs = [tuple(int(x) for x in r.split(":")) for r in (args.peer_runs or cfg["peer_runs"]).split(",")]
    try:
        stubs = None if importlib.util.find_spec("decord") else str(HERE / "gpu" / "stubs")
    except ImportError:
        stubs = str(HERE / "gpu" / "stubs")
    return dict(model_args_str=_model_args_str(margs), device="cuda" if on_gpu else "cpu",
                peer_runs=runs, stubs=stubs)


def _shapes(ckpt: str) -> dict:
    sys.path.insert(0, str(HERE / "gpu"))
    import checkpoint

    cfg, counts = checkpoint.meta_shapes(Path(ckpt))
    return roofline.as_dict(roofline.shapes_from_config(cfg, counts))


# ----------------------------------------------------------------------------- summary
def _rate(n, s):
    return n / s if n and s and s > 0 else None


def _raw_row(raw: dict, T: int, tag: str) -> dict | None:
    if not (raw.get("ok") and "main" in raw.get("runs", {})):
        return None
    m = raw["runs"]["main"]
    phase = m["end"] - m["submit"]
    row = {"label": f"(b) vLLM alone, same requests{tag}", "n": m["requests"], "request_phase_s": phase,
           "judgments_per_s": _rate(m["requests"], phase), "out_tokens_per_s": _rate(m["out_tokens"], phase),
           "out_tokens": m["out_tokens"], "prompt_tokens_mean": m["prompt_tokens_mean"],
           "ttfr_launch_s": m["end"] - raw["spawn"], "ttfr_submit_s": m["end"] - m["submit"],
           "engine_first_done_s": m["first_done"] - m["submit"],
           "import_s": raw["events"]["init_start"] - raw["spawn"],
           "init_s": raw["events"]["init_end"] - raw["events"]["init_start"],
           "launch_to_engine_ready_s": raw["events"]["init_end"] - raw["spawn"],
           "e2e_s": m["end"] - raw["spawn"], "gpu_mem_peak_bytes": raw.get("gpu_mem_peak_bytes"),
           "engine": raw.get("engine"),
           "main_sends": "flex's own SamplingParams" if "flex_sampling_params" in m.get("sampling", {})
           else f"one SamplingParams {m.get('sampling')}"}
    for name in ("seeded", "no_seed", "ignore_eos", "prefill_only"):
        r = raw["runs"].get(name)
        if r:
            row[f"{name}_s"] = r["end"] - r["submit"]
    if "prefill_only" in raw["runs"] and T > 1:
        dec = phase - row["prefill_only_s"]  # decode time ~ main run minus a prefill-only run of the same shape
        row["decode_s_est"] = dec
        row["decode_tokens_per_s_est"] = _rate(m["requests"] * (T - 1), dec)
    return row


def _flex_row(flex: dict, tag: str) -> dict | None:
    if not (flex.get("ok") and flex.get("runs") and flex["runs"][0].get("ok")):
        return None
    r = flex["runs"][0]
    ab_s = r.get("ab_s") or 0.0  # the A/B probe's calls ran inside lmms-eval's request phase: not flex's
    wait = 0.0  # the engine is built at model init, before evaluate(): the request phase never waits for it
    phase = r["evaluate_end"] - r["evaluate_start"] - wait - ab_s
    row = {"label": f"(a) flex via lmms-eval CLI{tag}", "n": r["requests"], "request_phase_s": phase,
           "judgments_per_s": _rate(r["requests"], phase), "out_tokens_per_s": _rate(r["out_tokens"], phase),
           "out_tokens": r["out_tokens"], "prompt_tokens_mean": r["prompt_tokens_mean"],
           "engine_calls": r["engine_calls"],
           "ttfr_launch_s": r["first_engine_end"] - flex["spawn"] - r.get("ab_pre_s", 0.0),
           "ttfr_submit_s": r["first_engine_end"] - r["evaluate_start"] - r.get("ab_pre_s", 0.0),
           "engine_first_done_s": (r["first_done"] or r["first_engine_end"]) - r["first_engine_start"],
           "engine_s": r["engine_s"] - wait, "flex_prepare_s": r.get("flex_prepare_s"),
           "lmms_other_s": phase - (r["engine_s"] - wait) - (r.get("flex_prepare_s") or 0),
           "engine_wait_in_evaluate_s": wait,
           "startup_s": r["evaluate_start"] - flex["spawn"],
           "e2e_s": r["end"] - flex["spawn"] - ab_s, "gpu_mem_peak_bytes": flex.get("gpu_mem_peak_bytes"),
           "gpu_mem_peak_bytes_per_gpu": flex.get("gpu_mem_peak_bytes_per_gpu")}
    row["judgments_per_s_engine_only"] = _rate(r["requests"], r["engine_s"] - wait)
    st = r.get("startup") or {}

    def span(k):
        c = st.get(k) or []
        return (c[0]["end"] - c[0]["start"]) if c and c[0].get("end") else None

    row["startup_breakdown_s"] = {
        "python_imports": flex["events"].get("lmms_main_start", flex["spawn"]) - flex["spawn"],
        "task_index": span("task_index"), "model_init": span("model_init"), "engine_init": span("engine_init"),
        "task_load": span("task_load"),
        "evaluate_start_to_first_engine_call": r["first_engine_start"] - r["evaluate_start"] - r.get("ab_pre_s", 0.0),
    }
    if r.get("ab"):
        row["ab"] = r["ab"]
        row["ab_flex_engine_s"] = r["engine_s"]
    return row


def summarize(out: dict) -> dict:
    parts, meta = out["parts"], out["meta"]
    wl = meta["workload"]
    n, T = wl["n"], wl["max_tokens"]
    rows, s = {}, {}
    for key, part in parts.items():
        if key.startswith("raw"):
            row = _raw_row(part, T, key[3:])
        elif key.startswith("flex"):
            row = _flex_row(part, key[4:])
        else:
            continue
        if row:
            rows[key] = row
    raw = parts.get("raw") or {}
    sweep = parts.get("sweep") or {}
    if sweep.get("variants"):
        s["sweep"] = sweep["variants"]
    hp = parts.get("hostprof") or {}
    if hp.get("kinds"):
        s["hostprof"] = {"engine": hp.get("engine"), "pids": hp.get("pids"), "kinds": hp["kinds"],
                         "detokenize": hp.get("detokenize", True)}
        img, txt = hp["kinds"].get("image") or {}, hp["kinds"].get("text") or {}
        if img.get("decode_tokens_per_s_est") and txt.get("decode_tokens_per_s_est"):
            s["hostprof"]["image_over_text_decode"] = img["decode_tokens_per_s_est"] / txt["decode_tokens_per_s_est"]
    peer = parts.get("peer") or {}
    if peer.get("ok"):
        runs = []
        init = peer["events"]["init_end"] - peer["events"]["init_start"]
        for r in peer.get("runs", []):
            if not r.get("ok"):
                runs.append({"batch_size": r.get("batch_size"), "n": r.get("n"), "error": r.get("error")})
                continue
            phase = r["evaluate_end"] - r["evaluate_start"]
            runs.append({"batch_size": r["batch_size"], "n": r["requests"], "request_phase_s": phase,
                         "judgments_per_s": _rate(r["requests"], phase), "out_tokens_per_s": _rate(r["out_tokens"], phase),
                         "out_tokens": r["out_tokens"], "prompt_tokens_mean": r["prompt_tokens_mean"],
                         "ttfr_submit_s": r["first_engine_end"] - r["evaluate_start"],
                         "ttfr_launch_s": r.get("init_ready_s", peer["events"]["init_end"] - peer["spawn"])
                         + (r["first_engine_end"] - r["evaluate_start"]),
                         "init_s": init, "gpu_mem_peak_bytes": r.get("gpu_mem_peak_bytes", peer.get("gpu_mem_peak_bytes"))})
        ok = [r for r in runs if r.get("judgments_per_s")]
        if ok:
            best = max(ok, key=lambda r: r["judgments_per_s"])
            rows["peer"] = dict(best, label=f"(c) lmms-eval qwen2_5_vl (transformers), batch {best['batch_size']}",
                                all_batch_sizes=runs)
        else:
            s["peer_error"] = runs
    # (d) roofline at the batch vLLM actually ran
    sh = meta.get("shapes")
    if sh:
        shapes = roofline.Shapes(**{k: sh[k] for k in roofline.Shapes.__dataclass_fields__})
        # only sweep rows of this workload's size count against its roofline
        sweep_ok = [v for v in s.get("sweep", []) if v.get("decode_tokens_per_s_est") and v.get("requests") == n]
        prompt = ((rows.get("raw") or rows.get("flex") or {}).get("prompt_tokens_mean")
                  or (sweep_ok[0]["prompt_tokens_mean"] if sweep_ok else 0))
        batch = n
        eng = raw.get("engine") or (sweep_ok[0].get("engine") if sweep_ok else None) or {}
        if eng.get("max_num_seqs"):
            batch = min(batch, eng["max_num_seqs"])
        if eng.get("num_gpu_blocks") and eng.get("block_size") and prompt:
            batch = min(batch, int(eng["num_gpu_blocks"] * eng["block_size"] // (prompt + T)))
        hw = parts.get("hw") or {}
        bws = {"nominal_3.35TBps": roofline.HBM_NOMINAL, "measured_3.0TBps": roofline.HBM_MEASURED}
        if hw.get("hbm_copy_bytes_per_s"):
            bws["this_gpu_copy"] = hw["hbm_copy_bytes_per_s"]
        rl = {"batch": batch, "prompt_tokens_mean": prompt, "bf16_dense_flops": roofline.BF16_DENSE,
              "decode": {k: dict(roofline.decode_roofline(shapes, batch, prompt, T, bw), bw=bw) for k, bw in bws.items()},
              "job": {k: roofline.job_roofline(shapes, n, batch, prompt, T, wl["image"], bw) for k, bw in bws.items()}}
        rows["roofline"] = {"label": "(d) roofline (3.0 TB/s, 989 TFLOP/s)",
                            "judgments_per_s": rl["job"]["measured_3.0TBps"]["judgments_per_s"],
                            "out_tokens_per_s": rl["job"]["measured_3.0TBps"]["out_tokens_per_s"],
                            "decode_tokens_per_s": rl["decode"]["measured_3.0TBps"]["tokens_per_s"]}
        s["roofline"] = rl
    # targets
    t = {}
    if "flex" in rows and "raw" in rows:
        f, r = rows["flex"], rows["raw"]
        # with --ab, flex's call ran third on its engine (prefix and media caches warm): not comparable
        name = "flex_over_raw" if not f.get("ab") else "flex_over_raw_after_ab_warm_caches_not_comparable"
        t[name] = f["judgments_per_s"] / r["judgments_per_s"]
        t["flex_over_raw_e2e"] = r["e2e_s"] / f["e2e_s"]
        # start-up: launch of lmms-eval to its first request entering the engine, vs LLM() alone
        first_req = f["startup_s"] + f["startup_breakdown_s"]["evaluate_start_to_first_engine_call"]
        t["startup_minus_raw_init_s"] = first_req - r["init_s"]
        t["startup_minus_raw_launch_to_ready_s"] = first_req - r["launch_to_engine_ready_s"]
    if "flex" in rows and "peer" in rows:
        t["flex_over_peer"] = rows["flex"]["judgments_per_s"] / rows["peer"]["judgments_per_s"]
    # the 1-GPU baseline for the 2-GPU runs: a run on the same warm compile cache (tag _warm1) when
    # there is one (the 2-GPU runs reuse the 1-GPU run's cache), else the first, cold 1-GPU run
    one = "flex_warm1" if "flex_warm1" in rows else "flex"
    for key, name in (("flex_dp2", "dp_speedup"), ("flex_tp2", "tp2_speedup")):
        if one in rows and key in rows:
            b = rows[one]
            t[f"{name}_baseline"] = one
            # end to end (the issue's definition): lmms-eval launch to its last judgment, 1 GPU over 2
            t[name] = b["e2e_s"] / rows[key]["e2e_s"]
            # request phase: data-parallel engines build in the background during lmms-eval's start-up,
            # so for DP this phase also holds the wait for them (not comparable with 1 GPU's)
            t[f"{name}_request_phase"] = rows[key]["judgments_per_s"] / b["judgments_per_s"]
    if "roofline" in s:
        # every decode measurement of this workload's shapes against the roofline at ITS batch
        # (vLLM alone: raw run, sweep variants, hostprof's image requests); the best one counts
        cands = []
        if (rows.get("raw") or {}).get("decode_tokens_per_s_est"):
            cands.append(("raw", rows["raw"]["decode_tokens_per_s_est"], s["roofline"]["batch"],
                          s["roofline"]["prompt_tokens_mean"]))
        for v in s.get("sweep") or []:
            if v.get("decode_tokens_per_s_est") and v.get("requests"):
                cands.append((f"sweep {v['name']}", v["decode_tokens_per_s_est"], v["requests"],
                              v.get("prompt_tokens_mean") or s["roofline"]["prompt_tokens_mean"]))
        img = ((s.get("hostprof") or {}).get("kinds") or {}).get("image") or {}
        if img.get("decode_tokens_per_s_est"):
            cands.append(("hostprof image", img["decode_tokens_per_s_est"], img["requests"], img["prompt_tokens"]))
        bws = {k: d["bw"] for k, d in s["roofline"]["decode"].items()}
        scored = []
        for name, tok_s, batch, prompt in cands:
            ratios = {k: tok_s / roofline.decode_roofline(shapes, batch, prompt, T, bw)["tokens_per_s"]
                      for k, bw in bws.items()}
            scored.append({"measurement": name, "tokens_per_s": tok_s, "batch": batch, "ratios": ratios})
        if scored:
            key = "this_gpu_copy" if "this_gpu_copy" in bws else "measured_3.0TBps"
            best = max(scored, key=lambda c: c["ratios"][key])
            s["decode_vs_roofline"] = scored
            for k, r in best["ratios"].items():
                t[f"decode_over_roofline_{k}"] = r
            t["decode_over_roofline"] = best["ratios"][key]
            s["decode_best"] = best
    if meta.get("startup_not_comparable") and "startup_minus_raw_init_s" in t:
        for k in ("startup_minus_raw_init_s", "startup_minus_raw_launch_to_ready_s", "flex_over_raw_e2e"):
            t[f"{k}_not_comparable"] = t.pop(k)
    for k in TARGETS:
        t.setdefault(k, None)  # not measured in this run: reported as such
    s["targets"] = {k: {"value": v, "target": TARGETS.get(k),
                        "met": ((v <= TARGETS[k]) if k in LOWER_IS_BETTER else (v >= TARGETS[k]))
                        if k in TARGETS and v is not None else None}
                    for k, v in t.items()}
    # the ratios the issue asks for, at the top level of the results JSON
    out["flex_over_raw"] = t.get("flex_over_raw")
    out["dp_speedup"] = t.get("dp_speedup")
    s["rows"] = rows
    return s


# ----------------------------------------------------------------------------- report
def _fmt(v, nd=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(out: dict) -> str:
    meta, s = out["meta"], out.get("summary") or summarize(out)
    wl = meta["workload"]
    vers = {}
    for p in [k for k in out["parts"] if k != "ckpt"]:
        vers.update({k: v for k, v in ((out["parts"].get(p) or {}).get("versions") or {}).items() if v})
    hw = out["parts"].get("hw") or {}
    lines = [f"# Flex-VL-7B-shaped judging: inference benchmark ({meta['mode']})", "",
             f"- date: {meta['date']}; machine: {meta.get('machine_kind') or '?'} ({hw.get('gpu', 'GPU not probed in this run')})",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())),
             f"- workload: {wl['n']} judgments, one {wl['image']}x{wl['image']} image, ~{_fmt((s['rows'].get('raw') or s['rows'].get('flex') or {}).get('prompt_tokens_mean'), 0)} "
             f"prompt tokens (image + text), {wl['max_tokens']} new tokens, temperature {wl['temperature']}, top_p {wl['top_p']}; random bf16 weights",
             "", "| setting | n | judgments/s | output tok/s | peak GPU mem (GiB) | first result after launch (s) | first result after submit (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    order = [k for pre in ("flex", "raw", "peer", "roofline") for k in s["rows"] if k.startswith(pre)]
    for key in order:
        r = s["rows"].get(key)
        if not r:
            continue
        mem = r.get("gpu_mem_peak_bytes")
        lines.append(f"| {r['label']} | {r.get('n', wl['n'])} | {_fmt(r.get('judgments_per_s'))} | {_fmt(r.get('out_tokens_per_s'), 0)} | "
                     f"{_fmt(mem / 2**30 if mem else None, 1)} | {_fmt(r.get('ttfr_launch_s'), 1)} | {_fmt(r.get('ttfr_submit_s'), 1)} |")
    lines += ["", "| target | value | goal | met |", "|---|---:|---:|---|"]
    for k, v in s["targets"].items():
        met = "not measured" if v["value"] is None and v["target"] else ("" if v["met"] is None else ("yes" if v["met"] else "NO"))
        lines.append(f"| {k} | {_fmt(v['value'], 3)} | {_fmt(v['target'])} | {met} |")
    lines += ["", "Details:"] + [f"- {x}" for x in _details(s, wl)]
    if meta.get("notes"):
        lines += ["", "Notes:", *[f"- {x}" for x in meta["notes"]]]
    return "\n".join(lines) + "\n"


def _details(s: dict, wl: dict) -> list[str]:
    rows, out = s["rows"], []
    f, r, p = rows.get("flex"), rows.get("raw"), rows.get("peer")
    for key in [k for k in rows if k.startswith("flex")]:
        f = rows[key]
        out.append(f"{key}: request phase {_fmt(f['request_phase_s'])} s = flex rendering {_fmt(f['flex_prepare_s'])} s"
                   f" + {f['engine_calls']} engine loop(s) (media decoding, engine, journal) {_fmt(f['engine_s'])} s"
                   f" + lmms-eval other {_fmt(f['lmms_other_s'])} s;"
                   f" launch to evaluate() {_fmt(f['startup_s'], 1)} s; {f['out_tokens']:,} output tokens")
        out.append(f"{key} start-up (s): " + ", ".join(f"{k} {_fmt(v, 1)}" for k, v in f["startup_breakdown_s"].items()
                                                    if v is not None))
        for ab in f.get("ab") or []:
            out.append(f"{key} same engine, same process: {ab['name']} {_fmt(ab['s'])} s for {ab['requests']} requests"
                       f" ({_fmt(ab['requests'] / ab['s'])} judgments/s); flex's own path after it: {_fmt(f['engine_s'])} s in LLM.generate")
    for key in [k for k in rows if k.startswith("raw")]:
        r = rows[key]
        out.append(f"{key}: LLM.generate {_fmt(r['request_phase_s'])} s with {r['main_sends']},"
                   f" {_fmt(r.get('ignore_eos_s'))} s with ignore_eos=True, {_fmt(r.get('seeded_s'))} s seeded, prefill-only {_fmt(r.get('prefill_only_s'))} s"
                   f" (max_tokens=1); import {_fmt(r['import_s'], 1)} s, engine init {_fmt(r['init_s'], 1)} s;"
                   f" {r['out_tokens']:,} output tokens; decode estimate (generate - prefill-only)"
                   f" {_fmt(r.get('decode_tokens_per_s_est'), 0)} tok/s")
    for v in s.get("sweep") or []:
        if v.get("error") or v.get("skipped"):
            out.append(f"sweep {v['name']} {v['extra']}: {v.get('error') or v.get('skipped')}")
            continue
        out.append(f"sweep {v['name']} {v['extra']} (n={v.get('requests')}, GPU {v.get('gpus', '-')}): init {_fmt(v['init_s'], 1)} s, generate {_fmt(v['main_s'])} s"
                   f" ({_fmt(v['judgments_per_s'])} judgments/s), prefill-only {_fmt(v['prefill_only_s'])} s,"
                   f" decode ~{_fmt(v['decode_tokens_per_s_est'], 0)} tok/s; engine {v.get('engine')}")
    hp = s.get("hostprof")
    for kind, k in (hp or {}).get("kinds", {}).items():
        out.append(f"hostprof {kind} (vLLM detokenizer {'on' if hp.get('detokenize', True) else 'off'}): "
                   f"{k.get('requests')} requests of {k['prompt_tokens']} prompt tokens, generate "
                   f"{_fmt(k.get('main_s'))} s, prefill-only {_fmt(k.get('prefill_only_s'))} s, decode "
                   f"~{_fmt(k.get('decode_tokens_per_s_est'), 0)} tok/s; py-spy {k.get('profile_window_s')} s into the run"
                   + (f"; profile errors {k['profile_errors']}" if k.get("profile_errors") else ""))
        for role, prof in (k.get("profiles") or {}).items():
            for thread, t in list(prof["threads"].items())[:2]:  # the busiest
                top = ", ".join(f"{name} {frac:.0%}" for name, frac in t["self"][:8])
                out.append(f"hostprof {kind} {role} thread {thread} (busy {t.get('busy', 0):.0%} of {t['samples']} "
                           f"samples) self: {top}")
    if p:
        out.append("(c) by batch size: " + "; ".join(
            f"{x['batch_size']}: " + (f"{_fmt(x.get('judgments_per_s'))} judgments/s on {x['n']}" if x.get("judgments_per_s")
                                      else f"failed ({str(x.get('error'))[:80]})") for x in p["all_batch_sizes"]))
    if s.get("decode_best"):
        b = s["decode_best"]
        out.append(f"decode vs roofline: best {b['measurement']} {_fmt(b['tokens_per_s'], 0)} tok/s at batch {b['batch']} = "
                   + ", ".join(f"{r:.2f} of {k}" for k, r in b["ratios"].items()) + "; all: " + "; ".join(
                       f"{c['measurement']} (batch {c['batch']}) {_fmt(c['tokens_per_s'], 0)} tok/s" for c in s["decode_vs_roofline"]))
    rl = s.get("roofline")
    if rl:
        for k, d in rl["decode"].items():
            j = rl["job"][k]
            out.append(f"(d) {k}: decode at batch {rl['batch']}, mean context {_fmt(d['mean_context'], 0)}: "
                       f"{d['bytes'] / 1e9:.1f} GB/step ({d['bound']}-bound, {d['t_mem_s'] * 1e3:.1f} ms mem vs "
                       f"{d['t_compute_s'] * 1e3:.1f} ms compute) -> {_fmt(d['tokens_per_s'], 0)} tok/s; whole job "
                       f">= {_fmt(j['t_total_s'])} s (prefill+vision {_fmt(j['t_prefill_s'])} s at 989 TFLOP/s)")
    return out


def _save(out: dict, args) -> None:
    out["summary"] = summarize(out)
    if args.out_json:
        Path(args.out_json).write_text(json.dumps(out, indent=1, default=str) + "\n")
    if args.out_md:
        Path(args.out_md).write_text(markdown(out))


def merge(paths: list[str], notes: list[str], startup_not_comparable: bool = False) -> dict:
    outs = [json.loads(Path(p).read_text()) for p in paths]
    merged = {"meta": dict(outs[-1]["meta"]), "parts": {}}
    peer_runs: dict = {}
    for o in outs:
        for k, v in o["parts"].items():
            if k == "sweep" and v.get("ok") and (merged["parts"].get(k) or {}).get("ok"):
                gpus = v.get("gpus")
                merged["parts"][k] = dict(merged["parts"][k], variants=merged["parts"][k]["variants"]
                                          + [dict(x, gpus=gpus) for x in v["variants"]])
            elif v.get("ok") or k not in merged["parts"]:
                merged["parts"][k] = v if k != "sweep" else dict(v, variants=[dict(x, gpus=v.get("gpus")) for x in v["variants"]])
        peer = o["parts"].get("peer") or {}
        for r in peer.get("runs", []) if peer.get("ok") else []:
            # each run keeps its own process's start-up time and memory peak
            r = dict(r, init_ready_s=peer["events"]["init_end"] - peer["spawn"],
                     gpu_mem_peak_bytes=peer.get("gpu_mem_peak_bytes"), source=o["meta"].get("date"))
            if r.get("ok") or r.get("batch_size") not in peer_runs:
                peer_runs[r.get("batch_size")] = r
    if peer_runs:
        merged["parts"]["peer"] = dict(merged["parts"]["peer"], runs=[peer_runs[b] for b in sorted(peer_runs)])
        for k in ("shapes", "machine_kind"):
            merged["meta"][k] = merged["meta"].get(k) or o["meta"].get(k)
    merged["meta"]["workload"]["parts"] = sorted(merged["parts"])
    merged["meta"]["merged_from"] = [Path(p).name for p in paths]
    merged["meta"]["notes"] = notes
    if startup_not_comparable:  # e.g. the processes shared one warm compile cache
        merged["meta"]["startup_not_comparable"] = True
    return merged


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_worker"]:
        sys.path.insert(0, str(REPO))
        import workers

        return workers.main(argv[1])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=sorted(MODES), default="smoke")
    ap.add_argument("--parts", help="comma list of hw, peer, raw, flex (default: per mode)")
    ap.add_argument("--n", type=int, help="judgments (default: gpu 256, smoke 4)")
    ap.add_argument("--max-tokens", type=int, help="new tokens per judgment (gpu 512, smoke 8)")
    ap.add_argument("--words", type=int, help="words of question + answers (text ~600 tokens at 60)")
    ap.add_argument("--peer-runs", help="batch:n pairs for the peer, e.g. 16:32,64:64")
    ap.add_argument("--flex-arg", action="append", default=[], type=lambda s: tuple(s.split("=", 1)),
                    help="extra flex model_arg KEY=VALUE (also given to the raw engine)")
    ap.add_argument("--ckpt", help="use this checkpoint dir instead of building one")
    ap.add_argument("--raw-runs", default="main,prefill_only",
                    help="raw part: main (flex's exact SamplingParams), ignore_eos, seeded, prefill_only")
    ap.add_argument("--profile-dir", help="raw part: torch-profile 10 decode steps into this absolute dir")
    ap.add_argument("--tag", default="", help="suffix of the part names in the results (e.g. _dp2), for --merge")
    ap.add_argument("--ab", action="store_true", help="flex part: also run the raw requests and flex's own "
                    "requests straight into the same engine, in the same process, before lmms-eval's call")
    ap.add_argument("--sweep", type=json.loads, default=SWEEP, help="JSON list of engine-setting variants")
    ap.add_argument("--sweep-n", type=int, help="requests per sweep variant (default: --n)")
    ap.add_argument("--sweep-ignore-eos", action="store_true", help="sweep with ignore_eos=True (the 2026-11-29 H200 sweep)")
    ap.add_argument("--sweep-budget-s", type=float, default=1e6,
                    help="seconds from this script's start by which the sweep must end (variants that would not fit are skipped)")
    ap.add_argument("--hostprof-detokenize", action="store_true",
                    help="hostprof: vLLM's incremental detokenizer on (as flex sent before 2026-11-30)")
    ap.add_argument("--hostprof-n", type=int, help="requests per kind in the hostprof part (default: --n)")
    ap.add_argument("--workdir", help="checkpoints and scratch (reused between calls)")
    ap.add_argument("--log-dir", help="worker logs (default: workdir)")
    ap.add_argument("--part-timeout", type=float)
    ap.add_argument("--parallel", action=argparse.BooleanOptionalAction, default=None,
                    help="run the parts at once (default: on in smoke mode, off on GPU)")
    ap.add_argument("--machine-kind", default=os.environ.get("FLEXBENCH_MACHINE"))
    ap.add_argument("--out-json")
    ap.add_argument("--out-md")
    ap.add_argument("--merge", nargs="+", help="combine result JSONs of earlier calls and report")
    ap.add_argument("--note", action="append", default=[], help="a line for the report (with --merge)")
    ap.add_argument("--startup-not-comparable", action="store_true",
                    help="with --merge: the runs shared a warm compile cache, start-up is reported as not comparable")
    args = ap.parse_args(argv)
    args.flex_arg = dict(args.flex_arg)
    if args.parallel is None:
        args.parallel = args.mode == "smoke"
    if args.parallel and args.mode == "gpu":
        ap.error("--parallel is for the CPU smoke only (parts would share the GPU and its memory poller)")
    out = merge(args.merge, args.note, args.startup_not_comparable) if args.merge else measure(args)
    _save(out, args)
    print(markdown(out))
    ok = all((v or {}).get("ok") for v in out["parts"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
