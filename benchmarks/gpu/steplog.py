"""Where the time of a vLLM run goes, step by step: a log of every engine step and its reduction
against a per-step lower bound.

`install(path)` wraps vLLM's `Scheduler.schedule` and `Scheduler.update_from_output` (both run in
the engine-core process; installed before `LLM()` in a process whose engine core is forked, or
in-process on CPU, the wrapped methods are the ones the engine runs). Per scheduled step it writes
one JSON line: when the schedule was made and when its output was processed, the requests and
tokens scheduled, how many of those tokens are prefill, the KV context the step reads, encoder
inputs, preemptions, KV-cache usage and the waiting queue. Written by hand because vLLM's own
stats (`SchedulerStats`, Prometheus) are per-interval aggregates without the per-step KV context,
and its torch profile covers a few steps only.

`reduce(steps, shape, bw, flops, ...)` turns the log into time shares by phase (steps with prefill,
decode at the full batch, the ramp, the tail), each against two per-step bounds:
  - `bw_bound`: the weights read once plus the KV context read, at the measured copy bandwidth
    (the issue's "roofline of the measured copy bandwidth");
  - `roofline`: the same KV read plus, for the weights, the larger of reading them and the GEMMs'
    FLOPs (2 x parameters x tokens scheduled) at the GPU's dense bf16 peak. At a batch of ~1,000
    tokens a 7B model's GEMMs need ~15 ms of a 989-TFLOPS GPU against ~3.5 ms to read its weights,
    so the bandwidth-only bound is not reachable there; this one is the standard roofline.
Attention FLOPs of prefill and the media encoders are left out of both (lower bounds).
The step's time is the interval between successive outputs (with async scheduling the host work
of step i+1 overlaps the GPU work of step i, so that interval is what one step costs).
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def install(path: Path) -> None:
    from vllm.v1.core.sched.scheduler import Scheduler

    if getattr(Scheduler, "_flex_steplog", None):
        return
    schedule, update = Scheduler.schedule, Scheduler.update_from_output
    state = {"fh": None, "pending": []}

    def out():
        if state["fh"] is None:  # opened in the process that runs the engine (after a fork)
            state["fh"] = open(path, "a", buffering=1)  # line-buffered: one write per step, a few us
        return state["fh"]

    def wrapped_schedule(self, *a, **k):
        so = schedule(self, *a, **k)
        n_tok = so.num_scheduled_tokens
        if so.total_num_scheduled_tokens:
            prefill = ctx = 0
            for rid, n in n_tok.items():
                req = self.requests.get(rid)
                ctx += req.num_computed_tokens if req is not None else n  # already advanced by n
                if n > 1:
                    prefill += n
            state["pending"].append({
                "ts": time.time(), "reqs": len(n_tok), "tok": so.total_num_scheduled_tokens, "prefill": prefill,
                "ctx": ctx, "enc": sum(len(v) for v in so.scheduled_encoder_inputs.values()),
                "preempt": len(getattr(so, "preempted_req_ids", None) or ()),
                "kv": round(float(self.kv_cache_manager.usage), 4), "waiting": len(self.waiting)})
        return so

    def wrapped_update(self, so, mro, *a, **k):
        res = update(self, so, mro, *a, **k)
        if so.total_num_scheduled_tokens and state["pending"]:
            rec = state["pending"].pop(0)
            rec["tu"] = time.time()
            out().write(json.dumps(rec) + "\n")
        return res

    Scheduler.schedule = wrapped_schedule
    Scheduler.update_from_output = wrapped_update
    Scheduler._flex_steplog = True


def read(path: Path, t0: float | None = None, t1: float | None = None) -> list[dict]:
    """The steps whose output came between t0 and t1 (wall clock, the same in every process)."""
    p = Path(path)
    if not p.exists():
        return []
    rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return [r for r in rows if (t0 is None or r["tu"] >= t0) and (t1 is None or r["tu"] <= t1)]


def phase(r: dict, max_seqs: int) -> str:
    if r["prefill"]:
        return "with_prefill"
    if r["reqs"] >= 0.9 * max_seqs:
        return "decode_full"
    if r["reqs"] < 64:
        return "decode_tail"
    return "decode_mid"


def reduce(steps: list[dict], shape: dict, bw: float | None, flops: float | None, max_seqs: int,
           t_start: float | None = None) -> dict:
    """Time shares and bound ratios by phase (see the module docstring)."""
    if not steps:
        return {"steps": 0, "note": "no steps recorded (an engine process that was spawned, not forked, "
                                    "does not carry the wrapped scheduler)"}
    w, kvb = shape["decode_weight_bytes"], shape["kv_bytes_per_token"]
    params = w / 2  # bf16
    prev = t_start if t_start is not None else steps[0]["ts"]
    phases: dict = {}
    for r in steps:
        dur = max(r["tu"] - prev, 0.0)
        prev = r["tu"]
        p = phases.setdefault(phase(r, max_seqs), {"steps": 0, "wall_s": 0.0, "bw_bound_s": 0.0, "roofline_s": 0.0,
                                                    "reqs": 0, "decode_tokens": 0, "prefill_tokens": 0, "ctx": 0})
        if bw:
            kv = r["ctx"] * kvb / bw
            p["bw_bound_s"] += w / bw + kv
            p["roofline_s"] += max(w / bw, 2 * params * r["tok"] / flops if flops else 0.0) + kv
        p["steps"] += 1
        p["wall_s"] += dur
        p["reqs"] += r["reqs"]
        p["decode_tokens"] += r["tok"] - r["prefill"]
        p["prefill_tokens"] += r["prefill"]
        p["ctx"] += r["ctx"]
    wall = sum(p["wall_s"] for p in phases.values())
    out = {"steps": len(steps), "wall_s": round(wall, 3),
           "before_first_schedule_s": round(steps[0]["ts"] - t_start, 3) if t_start is not None else None,
           "preemptions": sum(r["preempt"] for r in steps), "max_kv_usage": max(r["kv"] for r in steps),
           "encoder_inputs": sum(r["enc"] for r in steps), "phases": {}}
    for name in ("with_prefill", "decode_full", "decode_mid", "decode_tail"):
        p = phases.get(name)
        if not p:
            continue
        out["phases"][name] = {
            "steps": p["steps"], "wall_s": round(p["wall_s"], 3), "share": round(p["wall_s"] / wall, 4) if wall else None,
            "ms_per_step": round(1e3 * p["wall_s"] / p["steps"], 3), "mean_batch": round(p["reqs"] / p["steps"], 1),
            "mean_ctx_per_req": round(p["ctx"] / max(p["reqs"], 1), 1),
            "decode_tok_s": round(p["decode_tokens"] / p["wall_s"], 1) if p["wall_s"] else None,
            "decode_tokens": p["decode_tokens"], "prefill_tokens": p["prefill_tokens"],
            **{f"{b}_s": round(p[f"{b}_s"], 3) if bw else None for b in ("bw_bound", "roofline")},
            **{f"{b}_over_wall": round(p[f"{b}_s"] / p["wall_s"], 4) if bw and p["wall_s"] else None
               for b in ("bw_bound", "roofline")}}
    for b in ("bw_bound", "roofline"):
        total = sum(p[f"{b}_s"] for p in phases.values())
        out[f"{b}_s"] = round(total, 3) if bw else None
        out[f"{b}_over_wall"] = round(total / wall, 4) if bw and wall else None
    return out
