#!/usr/bin/env python3
"""Inference benchmark of Flex-VL-7B-shaped judging: the `flex` model through lmms-eval vs vLLM
alone vs lmms-eval's built-in `qwen2_5_vl` peer vs the roofline.

Workload: N VL-RewardBench-shaped judgments (the protocol's system prompt, one 448x448 image,
question + two answers; benchmarks/gpu/task), temperature 0.6, top_p 0.95, max_new_tokens T.
  (a) flex   the `flex` model (vLLM backend) through lmms-eval's CLI (flex_judge.lmms_main)
  (b) raw    vLLM alone with the flex model's engine kwargs on the same prompts + images
  (c) peer   lmms-eval's `qwen2_5_vl` (transformers generate), several batch sizes
  (d) roofline of the same shapes (benchmarks/gpu/roofline.py)
Each measurement runs in its own process; peak GPU memory is polled from NVML meanwhile.

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
TARGETS = {"flex_over_raw": 0.9, "flex_over_peer": 10.0, "decode_over_roofline": 0.5}


# ----------------------------------------------------------------------------- processes
class GpuMemPoller:
    """Peak device memory in use (all processes) while a worker runs, via NVML."""

    def __init__(self, period: float = 0.1):
        self.period, self.peak, self.base = period, None, None
        self._stop = threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._h = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: pynvml.nvmlDeviceGetMemoryInfo(self._h).used
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
            self.peak = max(self.peak, self._read())

    def __exit__(self, *exc):
        self._stop.set()
        if self._read:
            self._t.join()
            self.peak = max(self.peak, self._read())


class Worker:
    """One measurement in its own process (benchmarks/gpu/workers.py), its log and its result."""

    def __init__(self, worker: str, spec: dict, workdir: Path, log_dir: Path, timeout: float, tag: str):
        self.tag, self.timeout = tag, timeout
        self.spec = dict(spec, worker=worker, result_path=str(workdir / f"result-{tag}.json"))
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
        res.update(spawn=self.spawn, exit=time.time(), rc=rc, log=self.log.name,
                   gpu_mem_peak_bytes=self.mem.peak, gpu_mem_base_bytes=self.mem.base)
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

    need_weights = any(p in parts for p in ("peer", "raw", "flex"))
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
            job = ("raw", dict(common, model_args=flex_args))
        elif part == "flex":
            job = ("lmms", dict(common, model="flex", model_args_str=_model_args_str(flex_args)))
        elif part == "peer":
            job = ("lmms", dict(common, model="qwen2_5_vl", **_peer_spec(args, cfg, ckpt)))
        else:
            raise SystemExit(f"unknown part {part!r}; allowed: hw, raw, flex, peer")
        jobs.append((part, job))
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
        out["parts"][part] = run_worker(w, spec, workdir, log_dir, timeout, part)
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


def summarize(out: dict) -> dict:
    parts, meta = out["parts"], out["meta"]
    wl = meta["workload"]
    n, T = wl["n"], wl["max_tokens"]
    rows, s = {}, {}
    raw = parts.get("raw") or {}
    if raw.get("ok") and "main" in raw.get("runs", {}):
        m = raw["runs"]["main"]
        phase = m["end"] - m["submit"]
        rows["raw"] = {"label": "(b) vLLM alone, same requests", "n": m["requests"], "request_phase_s": phase,
                       "judgments_per_s": _rate(m["requests"], phase), "out_tokens_per_s": _rate(m["out_tokens"], phase),
                       "out_tokens": m["out_tokens"], "prompt_tokens_mean": m["prompt_tokens_mean"],
                       "ttfr_launch_s": m["end"] - raw["spawn"], "ttfr_submit_s": m["end"] - m["submit"],
                       "engine_first_done_s": m["first_done"] - m["submit"],
                       "init_s": raw["events"]["init_end"] - raw["events"]["init_start"],
                       "e2e_s": m["end"] - raw["spawn"], "gpu_mem_peak_bytes": raw.get("gpu_mem_peak_bytes")}
        for name in ("no_seed", "prefill_only"):
            r = raw["runs"].get(name)
            if r:
                rows["raw"][f"{name}_s"] = r["end"] - r["submit"]
        if "prefill_only" in raw["runs"]:
            pre = raw["runs"]["prefill_only"]["end"] - raw["runs"]["prefill_only"]["submit"]
            dec = phase - pre  # decode time ~ main run minus a prefill-only run of the same shape
            rows["raw"]["decode_s_est"] = dec
            rows["raw"]["decode_tokens_per_s_est"] = _rate(m["requests"] * (T - 1), dec) if T > 1 else None
            if "no_seed" in raw["runs"]:
                ns = raw["runs"]["no_seed"]
                rows["raw"]["decode_tokens_per_s_est_no_seed"] = _rate(m["requests"] * (T - 1), ns["end"] - ns["submit"] - pre)
    flex = parts.get("flex") or {}
    if flex.get("ok") and flex.get("runs") and flex["runs"][0].get("ok"):
        r = flex["runs"][0]
        phase = r["evaluate_end"] - r["evaluate_start"]
        rows["flex"] = {"label": "(a) flex via lmms-eval CLI", "n": r["requests"], "request_phase_s": phase,
                        "judgments_per_s": _rate(r["requests"], phase), "out_tokens_per_s": _rate(r["out_tokens"], phase),
                        "out_tokens": r["out_tokens"], "prompt_tokens_mean": r["prompt_tokens_mean"],
                        "ttfr_launch_s": r["first_engine_end"] - flex["spawn"],
                        "ttfr_submit_s": r["first_engine_end"] - r["evaluate_start"],
                        "engine_first_done_s": (r["first_done"] or r["first_engine_end"]) - r["first_engine_start"],
                        "engine_s": r["engine_s"], "flex_prepare_s": r.get("flex_prepare_s"),
                        "lmms_other_s": phase - r["engine_s"] - (r.get("flex_prepare_s") or 0),
                        "startup_s": r["evaluate_start"] - flex["spawn"],
                        "e2e_s": r["end"] - flex["spawn"], "gpu_mem_peak_bytes": flex.get("gpu_mem_peak_bytes")}
        rows["flex"]["judgments_per_s_engine_only"] = _rate(r["requests"], r["engine_s"])
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
        prompt = (rows.get("raw") or rows.get("flex") or {}).get("prompt_tokens_mean") or 0
        batch = n
        eng = raw.get("engine") or {}
        if eng.get("max_num_seqs"):
            batch = min(batch, eng["max_num_seqs"])
        if eng.get("num_gpu_blocks") and eng.get("block_size") and prompt:
            batch = min(batch, int(eng["num_gpu_blocks"] * eng["block_size"] // (prompt + T)))
        hw = parts.get("hw") or {}
        bws = {"nominal_3.35TBps": roofline.HBM_NOMINAL, "measured_3.0TBps": roofline.HBM_MEASURED}
        if hw.get("hbm_copy_bytes_per_s"):
            bws["this_gpu_copy"] = hw["hbm_copy_bytes_per_s"]
        rl = {"batch": batch, "prompt_tokens_mean": prompt, "bf16_dense_flops": roofline.BF16_DENSE,
              "decode": {k: roofline.decode_roofline(shapes, batch, prompt, T, bw) for k, bw in bws.items()},
              "job": {k: roofline.job_roofline(shapes, n, batch, prompt, T, wl["image"], bw) for k, bw in bws.items()}}
        rows["roofline"] = {"label": "(d) roofline (3.0 TB/s, 989 TFLOP/s)",
                            "judgments_per_s": rl["job"]["measured_3.0TBps"]["judgments_per_s"],
                            "out_tokens_per_s": rl["job"]["measured_3.0TBps"]["out_tokens_per_s"],
                            "decode_tokens_per_s": rl["decode"]["measured_3.0TBps"]["tokens_per_s"]}
        s["roofline"] = rl
    # targets
    t = {}
    if "flex" in rows and "raw" in rows:
        t["flex_over_raw"] = rows["flex"]["judgments_per_s"] / rows["raw"]["judgments_per_s"]
        t["flex_over_raw_e2e"] = rows["raw"]["e2e_s"] / rows["flex"]["e2e_s"]
    if "flex" in rows and "peer" in rows:
        t["flex_over_peer"] = rows["flex"]["judgments_per_s"] / rows["peer"]["judgments_per_s"]
    if "raw" in rows and "roofline" in s and rows["raw"].get("decode_tokens_per_s_est"):
        for k, d in s["roofline"]["decode"].items():
            t[f"decode_over_roofline_{k}"] = rows["raw"]["decode_tokens_per_s_est"] / d["tokens_per_s"]
        t["decode_over_roofline"] = t["decode_over_roofline_measured_3.0TBps"]
    for k in TARGETS:
        t.setdefault(k, None)  # not measured in this run: reported as such
    s["targets"] = {k: {"value": v, "target": TARGETS.get(k),
                        "met": (v >= TARGETS[k]) if k in TARGETS and v is not None else None}
                    for k, v in t.items()}
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
    for p in ("raw", "flex", "peer"):
        vers.update({k: v for k, v in ((out["parts"].get(p) or {}).get("versions") or {}).items() if v})
    hw = out["parts"].get("hw") or {}
    lines = [f"# Flex-VL-7B-shaped judging: inference benchmark ({meta['mode']})", "",
             f"- date: {meta['date']}; machine: {meta.get('machine_kind') or '?'} ({hw.get('gpu', 'no GPU')})",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())),
             f"- workload: {wl['n']} judgments, one {wl['image']}x{wl['image']} image, ~{_fmt((s['rows'].get('raw') or {}).get('prompt_tokens_mean'), 0)} "
             f"prompt tokens (image + text), {wl['max_tokens']} new tokens, temperature {wl['temperature']}, top_p {wl['top_p']}; random bf16 weights",
             "", "| setting | n | judgments/s | output tok/s | peak GPU mem (GiB) | first result after launch (s) | first result after submit (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for key in ("flex", "raw", "peer", "roofline"):
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
    if f:
        out.append(f"(a) request phase {_fmt(f['request_phase_s'])} s = flex render+media {_fmt(f['flex_prepare_s'])} s"
                   f" + one LLM.generate {_fmt(f['engine_s'])} s + lmms-eval other {_fmt(f['lmms_other_s'])} s;"
                   f" launch to first request {_fmt(f['startup_s'], 1)} s; {f['out_tokens']:,} output tokens")
    if r:
        out.append(f"(b) LLM.generate {_fmt(r['request_phase_s'])} s with a seed per request (as flex sends),"
                   f" {_fmt(r.get('no_seed_s'))} s without, prefill-only {_fmt(r.get('prefill_only_s'))} s"
                   f" (max_tokens=1); engine init {_fmt(r['init_s'], 1)} s; {r['out_tokens']:,} output tokens")
        out.append(f"decode estimate (generate - prefill-only): {_fmt(r.get('decode_tokens_per_s_est'), 0)} tok/s seeded,"
                   f" {_fmt(r.get('decode_tokens_per_s_est_no_seed'), 0)} tok/s unseeded")
    if p:
        out.append("(c) by batch size: " + "; ".join(
            f"{x['batch_size']}: " + (f"{_fmt(x.get('judgments_per_s'))} judgments/s on {x['n']}" if x.get("judgments_per_s")
                                      else f"failed ({str(x.get('error'))[:80]})") for x in p["all_batch_sizes"]))
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


def merge(paths: list[str], notes: list[str]) -> dict:
    outs = [json.loads(Path(p).read_text()) for p in paths]
    merged = {"meta": dict(outs[-1]["meta"]), "parts": {}}
    peer_runs: dict = {}
    for o in outs:
        for k, v in o["parts"].items():
            if v.get("ok") or k not in merged["parts"]:
                merged["parts"][k] = v
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
    args = ap.parse_args(argv)
    args.flex_arg = dict(args.flex_arg)
    if args.parallel is None:
        args.parallel = args.mode == "smoke"
    if args.parallel and args.mode == "gpu":
        ap.error("--parallel is for the CPU smoke only (parts would share the GPU and its memory poller)")
    out = merge(args.merge, args.note) if args.merge else measure(args)
    _save(out, args)
    print(markdown(out))
    ok = all((v or {}).get("ok") for v in out["parts"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
