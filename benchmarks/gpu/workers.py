"""One measurement per process (`python benchmarks/inference_gpu.py _worker SPEC.json`).

Each worker reads a spec, runs, and writes a result JSON with absolute wall-clock timestamps
(time.time()) so the orchestrator can measure from the moment it launched the process.
  raw   vLLM alone: `LLM(**flex's engine kwargs)`, one `generate` over the same rendered prompts +
        images the flex model builds; then a run without per-request seeds and a prefill-only run
        (on other docs, so prefix / multimodal caches do not help them).
  lmms  lmms-eval end to end: the `flex` model through the project's CLI forwarder, or the peer
        `qwen2_5_vl` through lmms-eval's Python API (one model load, several batch sizes).
  hw    HBM copy bandwidth and a bf16 matmul rate on this GPU.
  ckpt  build the benchmark checkpoint (random weights for 7b).
Probes only observe: they time calls and count tokens; the one change is that a `use_tqdm=True`
passed to `vllm.LLM.generate` gets a tqdm subclass that records when the first request finished.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TASK_DIR = HERE / "task"
TASK = "flexbench_vlrb_synth"


# ----------------------------------------------------------------------------- probes
class Probe:
    """Timestamps of wrapped calls: {name: [{start, end, ...}]}."""

    def __init__(self):
        self.calls: dict[str, list] = {}
        self.first_done: float | None = None

    def wrap(self, owner, attr: str, name: str, count=None):
        orig = getattr(owner, attr)
        probe = self

        def wrapper(*args, **kwargs):
            rec = {"start": time.time()}
            probe.calls.setdefault(name, []).append(rec)
            out = orig(*args, **kwargs)
            rec["end"] = time.time()
            if count is not None:
                try:
                    rec.update(count(args, kwargs, out))
                except Exception as e:  # a probe must never break the run
                    rec["count_error"] = repr(e)
            return out

        wrapper.__wrapped__ = orig
        setattr(owner, attr, wrapper)

    def wrap_stream(self, owner, attr: str, name: str):
        """Like wrap, for a generator of (index, Output): start at the first pull, end when
        exhausted, first_done at the first finished request, requests and tokens counted."""
        orig = getattr(owner, attr)
        probe = self

        def wrapper(*args, **kwargs):
            rec = {"start": time.time(), "requests": 0, "out_tokens": 0, "prompt_tokens": 0}
            probe.calls.setdefault(name, []).append(rec)
            for item in orig(*args, **kwargs):
                o = item[1]
                if probe.first_done is None:
                    probe.first_done = time.time()
                rec["requests"] += 1
                rec["out_tokens"] += sum(len(t) for t in o.token_ids)
                rec["prompt_tokens"] += o.prompt_tokens or 0
                yield item
            rec["end"] = time.time()
            rec["prompt_tokens_mean"] = rec["prompt_tokens"] / max(rec["requests"], 1)

        wrapper.__wrapped__ = orig
        setattr(owner, attr, wrapper)

    def tqdm_class(self):
        from tqdm import tqdm

        probe = self

        class FirstDone(tqdm):
            def update(self, n=1):
                if n and probe.first_done is None and "render" not in str(self.desc).lower():
                    probe.first_done = time.time()
                return super().update(n)

        return FirstDone


def _vllm_counts(args, kwargs, out):
    toks = sum(len(c.token_ids) for r in out for c in r.outputs)
    prompt = [len(r.prompt_token_ids or []) for r in out]
    return {"requests": len(out), "out_tokens": toks,
            "prompt_tokens_mean": sum(prompt) / max(len(prompt), 1)}


def _install_ab(probe: Probe, spec: dict):
    """Same process, same engine, same requests, before flex's own call: (1) the raw benchmark's
    requests (one shared SamplingParams, ignore_eos) and (2) flex's own prompts and per-request
    SamplingParams straight into LLM.generate. Then lmms-eval runs flex's path (3) as usual."""
    from vllm import SamplingParams

    from flex_models.backends.vllm_backend import sampling_params, vllm_prompt
    from flex_models.model import FlexJudge

    orig = FlexJudge.generate_until

    def generate_until(self, requests):
        if self.backend is None or probe.calls.get("ab"):
            return orig(self, requests)
        t_ab = time.time()
        from flex_models.model import MediaCache

        cache = MediaCache(self.args.audio_scaling)
        prepared = [self.decode(p, cache) for p in self._plan_all(requests)]
        prompts = [vllm_prompt(p) for p in prepared]
        llm, ab = self.backend.llm, []
        raw_sp = SamplingParams(temperature=spec["temperature"], top_p=spec["top_p"], top_k=-1,
                                max_tokens=spec["max_tokens"], ignore_eos=True, skip_special_tokens=True)

        def timed(name, params):
            t0 = time.time()
            outs = llm.generate(prompts, params, use_tqdm=False)
            ab.append({"name": name, "s": time.time() - t0, **_vllm_counts(None, None, outs)})
            print(f"[ab] {ab[-1]}", flush=True)

        timed("raw_requests_first", raw_sp)
        timed("flex_params_direct", [sampling_params(p.spec) for p in prepared])
        probe.calls["ab"] = [{"start": t_ab, "end": time.time(), "runs": ab}]
        probe.calls.pop("engine_generate", None)
        probe.calls.pop("flex_prepare", None)
        probe.first_done = None
        out = orig(self, requests)  # flex's own path, as lmms-eval calls it
        t_post = time.time()
        timed("raw_requests_after_flex", raw_sp)
        probe.calls["ab"][0]["post_s"] = time.time() - t_post
        return out

    FlexJudge.generate_until = generate_until


def _hf_counts(args, kwargs, out):
    seqs = out.sequences if hasattr(out, "sequences") else out
    ids = kwargs.get("input_ids")
    new = seqs.shape[1] - (ids.shape[1] if ids is not None else 0)
    return {"requests": int(seqs.shape[0]), "out_tokens": int(seqs.shape[0] * new),
            "prompt_tokens_mean": float(ids.shape[1]) if ids is not None else None}


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("vllm", "torch", "transformers", "lmms_eval", "flex-judge"):
        try:
            out[name] = md.version(name)
        except Exception:
            mod = sys.modules.get(name.replace("-", "_"))
            out[name] = getattr(mod, "__version__", None)
    return out


# ----------------------------------------------------------------------------- raw vLLM
def _requests(n: int, first: int, spec: dict):
    sys.path.insert(0, str(TASK_DIR))
    import utils  # the task's own doc builder
    from flex_models.render import render

    docs = utils.make_docs(n + first, words=spec["words"], image=spec["image"])[first:]
    reqs = []
    for d in docs:
        r = render(utils.doc_to_messages(d), "vl")
        assert r.prompt == utils.render_prompt(d), "flex render differs from the benchmark's prompt"
        reqs.append({"prompt": r.prompt, "multi_modal_data": {"image": list(r.media["image"])}})
    return reqs


def run_raw(spec: dict) -> dict:
    t_import = time.time()
    from vllm import LLM, SamplingParams  # before anything asks torch about CUDA (as in the flex run)

    from flex_models.args import parse_args
    from flex_models.backends import vllm_backend as vb

    if vb.on_cpu():
        for k, v in vb.CPU_ENV.items():
            os.environ.setdefault(k, v)

    probe = Probe()
    kwargs = vb.engine_kwargs(parse_args(dict(spec["model_args"])), "vl")
    kwargs.update(spec.get("engine_extra") or {})
    if os.environ.get("FLEXBENCH_LOG_STATS"):
        kwargs.setdefault("disable_log_stats", False)
    if spec.get("profile_dir"):  # torch profiler over steady-state decode steps (started below, after the runs)
        kwargs["profiler_config"] = {"profiler": "torch", "torch_profiler_dir": spec["profile_dir"],
                                     "torch_profiler_with_stack": False, "delay_iterations": 40,
                                     "max_iterations": 10}
    res = {"engine_kwargs": {k: v for k, v in kwargs.items()}, "events": {"import_start": t_import}}
    import torch

    if torch.cuda.is_initialized():  # a forked engine process could not use CUDA then
        os.environ["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
        res["note"] = "CUDA was initialised before LLM(): engine process spawned"
    t0 = time.time()
    llm = LLM(**kwargs)
    res["events"].update(init_start=t0, init_end=time.time())
    try:
        cc = llm.llm_engine.vllm_config
        res["engine"] = {"max_num_seqs": cc.scheduler_config.max_num_seqs,
                         "max_num_batched_tokens": cc.scheduler_config.max_num_batched_tokens,
                         "num_gpu_blocks": cc.cache_config.num_gpu_blocks,
                         "block_size": cc.cache_config.block_size,
                         "prefix_caching": cc.cache_config.enable_prefix_caching}
    except Exception as e:
        res["engine"] = {"error": repr(e)}
    n, T = spec["n"], spec["max_tokens"]
    base = dict(temperature=spec["temperature"], top_p=spec["top_p"], top_k=-1, ignore_eos=True,
                skip_special_tokens=True)
    # "main" sends exactly what flex sends: one SamplingParams per request, built by flex's own code
    # from the task's gen_kwargs (no per-request seed, EOS honoured). The other runs vary one thing.
    from flex_models.requests import build_spec

    gk = {"max_new_tokens": T, "temperature": spec["temperature"], "top_p": spec["top_p"], "do_sample": True, "until": []}
    flex_spec = build_spec(gk, T)
    # "seeded": what flex sends for a protocol run k (`flex-judge judge`, multi-run tasks): the same
    # SamplingParams with the run's seed on every request
    seeded_spec = build_spec(gk, T, doc_seed=spec["seed"])
    runs = [("main", 0, flex_spec),
            ("ignore_eos", n, dict(base, max_tokens=T, seed=None)),  # what the raw runs sent before 2026-11-29
            ("seeded", n, seeded_spec),
            ("prefill_only", 2 * n, dict(base, max_tokens=1, seed=None))]
    res["runs"] = {}
    for name, first, sp in runs:
        if name not in spec.get("raw_runs", ["main", "prefill_only"]):
            continue
        reqs = _requests(n, first, spec)
        params = SamplingParams(**sp) if isinstance(sp, dict) else [vb.sampling_params(sp) for _ in reqs]
        probe.first_done = None
        t_sub = time.time()
        outs = llm.generate(reqs, params, use_tqdm=probe.tqdm_class())
        t_end = time.time()
        c = _vllm_counts(None, None, outs)
        desc = sp if isinstance(sp, dict) else {"flex_sampling_params": repr(params[0]), "seed": sp.seed}
        res["runs"][name] = {"submit": t_sub, "end": t_end, "first_done": probe.first_done or t_end,
                             "sampling": {k: v for k, v in desc.items()}, **c}
    if spec.get("profile_dir"):
        try:  # n fresh requests; steps 40-49 are decode steps at the full batch (prefill takes ~25)
            llm.start_profile()
            t0 = time.time()
            llm.generate(_requests(n, 3 * n, spec), SamplingParams(**dict(base, max_tokens=64, seed=None)), use_tqdm=False)
            t1 = time.time()
            llm.stop_profile()
            res["profile"] = {"generate_s": t1 - t0, "stop_s": time.time() - t1, "dir": spec["profile_dir"],
                              "steps": "10 engine steps after the first 40 (decode at the full batch)"}
        except Exception as e:
            res["profile"] = {"error": f"{type(e).__name__}: {e}"[:1000]}
    res["versions"] = _versions()
    return res


def _engine_info(llm) -> dict:
    try:
        cc = llm.llm_engine.vllm_config
        return {"max_num_seqs": cc.scheduler_config.max_num_seqs,
                "max_num_batched_tokens": cc.scheduler_config.max_num_batched_tokens,
                "num_gpu_blocks": cc.cache_config.num_gpu_blocks, "block_size": cc.cache_config.block_size,
                "prefix_caching": cc.cache_config.enable_prefix_caching,
                "kv_cache_dtype": str(cc.cache_config.cache_dtype),
                "async_scheduling": getattr(cc.scheduler_config, "async_scheduling", None)}
    except Exception as e:
        return {"error": repr(e)}


def run_sweep(spec: dict) -> dict:
    """Engine settings on the image workload, one engine after another in this process: for each
    variant, LLM(flex's engine kwargs + variant), the unseeded main run and a prefill-only run."""
    from vllm import LLM, SamplingParams

    from flex_models.args import parse_args
    from flex_models.backends import vllm_backend as vb

    base_kw = vb.engine_kwargs(parse_args(dict(spec["model_args"])), "vl")
    if os.environ.get("FLEXBENCH_LOG_STATS"):
        base_kw.setdefault("disable_log_stats", False)
    n, T = spec["n"], spec["max_tokens"]
    from flex_models.requests import build_spec

    # what flex sends (EOS honoured, no per-request seed); ignore_eos=True only with spec["ignore_eos"]
    flex_spec = build_spec({"max_new_tokens": T, "temperature": spec["temperature"], "top_p": spec["top_p"],
                            "do_sample": True, "until": [], "ignore_eos": bool(spec.get("ignore_eos"))}, T)
    main_reqs, pre_reqs = _requests(n, 0, spec), _requests(n, n, spec)
    main_params = [vb.sampling_params(flex_spec) for _ in main_reqs]
    pre_params = SamplingParams(temperature=spec["temperature"], top_p=spec["top_p"], max_tokens=1)
    res = {"base_engine_kwargs": base_kw, "variants": [], "versions": _versions(),
           "sampling": repr(main_params[0]), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
    deadline = spec.get("deadline") or 1e18
    for var in spec["variants"]:
        var = dict(var)
        name = var.pop("name")
        row = {"name": name, "extra": var}
        if time.time() + spec.get("variant_budget_s", 100) > deadline:
            row["skipped"] = "no time left in this call"
            res["variants"].append(row)
            continue
        llm = None
        try:
            t0 = time.time()
            llm = LLM(**dict(base_kw, **var))
            row.update(init_s=time.time() - t0, engine=_engine_info(llm))
            t1 = time.time()
            outs = llm.generate(main_reqs, main_params, use_tqdm=False)
            row["main_s"] = time.time() - t1
            row.update(_vllm_counts(None, None, outs))
            t2 = time.time()
            llm.generate(pre_reqs, pre_params, use_tqdm=False)
            row["prefill_only_s"] = time.time() - t2
            dec = row["main_s"] - row["prefill_only_s"]
            row["judgments_per_s"] = n / row["main_s"]
            row["decode_tokens_per_s_est"] = (row["out_tokens"] - n) / dec if dec > 0 else None
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"[:1000]
        print(f"[sweep] {json.dumps(row, default=str)}", flush=True)
        res["variants"].append(row)
        _write(spec, dict(res, ok=True, partial=True))
        if llm is not None:  # free the GPU for the next engine
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as e:
                row["shutdown_error"] = repr(e)
            del llm
            import gc

            gc.collect()
            time.sleep(3)
    return res


def _engine_pids() -> dict:
    """This process and its vLLM engine-core child(ren), by role."""
    import psutil

    me = psutil.Process()
    out = {"front_end": me.pid}
    for ch in me.children(recursive=True):
        try:
            text = " ".join([ch.name()] + ch.cmdline())
        except psutil.Error:
            continue
        if "EngineCore" in text or "engine_core" in text:
            out.setdefault("engine_core", ch.pid)
    return out


def run_hostprof(spec: dict) -> dict:
    """Image requests against text-only requests of the same prompt length, on ONE engine: the
    decode rate of each (a run of max_tokens=T minus a prefill-only run on other requests) and
    py-spy samples of the engine-core and front-end processes while each decodes (hostprof.py).
    Text prompts are random token ids (a seeded RNG) as long as the image prompts."""
    import random

    from vllm import LLM, SamplingParams

    import hostprof
    from flex_models.args import parse_args
    from flex_models.backends import vllm_backend as vb

    kwargs = vb.engine_kwargs(parse_args(dict(spec["model_args"])), "vl")
    kwargs.update(spec.get("engine_extra") or {})
    kwargs.setdefault("disable_log_stats", False)
    n, T = spec["n"], spec["max_tokens"]
    t0 = time.time()
    llm = LLM(**kwargs)
    res = {"engine_kwargs": kwargs, "init_s": time.time() - t0, "engine": _engine_info(llm),
           "detokenize": bool(spec.get("detokenize")),
           "pids": _engine_pids(), "py_spy": hostprof.py_spy(), "kinds": {}, "versions": _versions()}
    sample = dict(temperature=spec["temperature"], top_p=spec["top_p"], top_k=-1, skip_special_tokens=True)
    pre_params = SamplingParams(max_tokens=1, **sample)
    # equal decode length for both kinds; detokenize as flex's requests do (spec "detokenize", default off)
    main_params = SamplingParams(max_tokens=T, ignore_eos=True, detokenize=bool(spec.get("detokenize")), **sample)
    img_main, img_pre = _requests(n, 0, spec), _requests(n, n, spec)
    t1 = time.time()
    outs = llm.generate(img_pre, pre_params, use_tqdm=False)
    img_pre_s = time.time() - t1
    length = round(sum(len(o.prompt_token_ids) for o in outs) / len(outs))
    rng = random.Random(0)
    vocab = min(llm.get_tokenizer().vocab_size, 150_000)
    low = min(1000, vocab // 4)  # past the special / byte tokens

    def text_requests():
        return [{"prompt_token_ids": [rng.randrange(low, vocab) for _ in range(length)]} for _ in range(n)]

    text_main, text_pre = text_requests(), text_requests()
    log_dir = Path(spec.get("log_dir") or spec["workdir"])
    for kind, main_reqs, pre_reqs in (("text", text_main, text_pre), ("image", img_main, None)):
        row: dict = {"prompt_tokens": length}
        if pre_reqs is None:
            row["prefill_only_s"] = img_pre_s
        else:
            t1 = time.time()
            llm.generate(pre_reqs, pre_params, use_tqdm=False)
            row["prefill_only_s"] = time.time() - t1
        procs, files = [], {}
        delay = row["prefill_only_s"] + spec.get("profile_delay_s", 3.0)
        seconds = spec.get("profile_s", 8.0)

        def sample_later():
            time.sleep(delay)
            for role, pid in res["pids"].items():
                files[role] = log_dir / f"pyspy-{spec.get('tag', 'hostprof')}-{kind}-{role}.txt"
                try:
                    procs.append(hostprof.record(pid, seconds, files[role]))
                except Exception as e:
                    row.setdefault("profile_errors", []).append(f"{role}: {e!r}")

        import threading

        th = threading.Thread(target=sample_later, daemon=True)
        th.start()
        t1 = time.time()
        outs = llm.generate(main_reqs, main_params, use_tqdm=False)
        row["main_s"] = time.time() - t1
        th.join()
        for p in procs:
            try:
                text = p.communicate(timeout=seconds + 30)[0]
            except subprocess.TimeoutExpired:
                p.kill()
                text = "py-spy timed out"
            if p.returncode:
                row.setdefault("profile_errors", []).append(text[-500:])
        row.update(_vllm_counts(None, None, outs))
        dec = row["main_s"] - row["prefill_only_s"]
        row["decode_tokens_per_s_est"] = (row["out_tokens"] - n) / dec if dec > 0 else None
        row["profile_window_s"] = [delay, delay + seconds]
        row["profiles"] = {role: hostprof.collapse(f) for role, f in files.items() if f.exists()}
        row["profile_files"] = {role: f.name for role, f in files.items()}
        res["kinds"][kind] = row
        print(f"[hostprof] {kind}: {json.dumps({k: v for k, v in row.items() if k != 'profiles'}, default=str)}",
              flush=True)
        _write(spec, dict(res, ok=True, partial=True))
    return res


# ----------------------------------------------------------------------------- lmms-eval
def _install_probes(probe: Probe, model: str, spec: dict | None = None):
    import lmms_eval.evaluator as ev

    probe.wrap(ev, "evaluate", "evaluate")
    probe.wrap(ev, "get_task_dict", "task_load")  # datasets + docs of the tasks
    probe.wrap(ev.TaskManager, "__init__", "task_index")  # lmms-eval's index of all task yamls
    if model == "flex":
        import vllm

        from flex_models.model import FlexJudge

        if os.environ.get("FLEXBENCH_LOG_STATS"):  # vLLM's per-interval stats lines (running / waiting / tok/s)
            orig_init = vllm.LLM.__init__

            def init(self, *a, **kw):
                kw.setdefault("disable_log_stats", False)
                return orig_init(self, *a, **kw)

            vllm.LLM.__init__ = init
        probe.wrap(vllm.LLM, "__init__", "engine_init")
        probe.wrap(FlexJudge, "__init__", "model_init")
        if (spec or {}).get("ab"):
            _install_ab(probe, spec)
        probe.wrap(FlexJudge, "generate_until", "model_generate_until")
        probe.wrap(FlexJudge, "_plan_all", "flex_prepare")  # rendering; media are decoded inside the stream
        probe.wrap_stream(FlexJudge, "_stream", "engine_generate")  # the engine loop, as lmms-eval's call runs it
    else:
        from transformers.generation.utils import GenerationMixin

        probe.wrap(GenerationMixin, "generate", "engine_generate", _hf_counts)


def run_lmms(spec: dict) -> dict:
    os.environ["FLEXBENCH_WORDS"] = str(spec["words"])
    os.environ["FLEXBENCH_IMAGE"] = str(spec["image"])
    t_import = time.time()
    probe = Probe()
    res = {"events": {"import_start": t_import}, "runs": []}
    model = spec["model"]
    if model == "flex":
        os.environ["FLEXBENCH_N"] = str(spec["n"])
        from flex_judge.lmms_main import main as lmms_main

        argv = ["--model", "flex", "--model_args", spec["model_args_str"], "--tasks", TASK,
                "--include_path", str(TASK_DIR), "--gen_kwargs", f"max_new_tokens={spec['max_tokens']}",
                # a fresh output folder per run: lmms-eval's flex journal lives under it, and a journal left by
                # an earlier run would answer every request without the engine (as it should, for users)
                "--output_path", str(Path(spec["workdir"]) / f"lmms-flex-{spec.get('tag', 'run')}-{int(time.time())}"),
                "--verbosity", "WARNING"]
        _install_probes(probe, model, spec)
        t0 = time.time()
        res["events"]["lmms_main_start"] = t0
        lmms_main(argv)
        run = _lmms_run(probe, t0, time.time(), spec["n"], batch_size=None)
        run["startup"] = {k: [{"start": c["start"], "end": c.get("end")} for c in probe.calls.get(k, [])]
                          for k in ("task_index", "model_init", "engine_init", "task_load")}
        ab = probe.calls.get("ab")
        if ab:
            run["ab"] = ab[0]["runs"]
            run["ab_pre_s"] = ab[0]["end"] - ab[0]["start"]
            run["ab_s"] = run["ab_pre_s"] + ab[0].get("post_s", 0.0)
        res["runs"].append(run)
    else:
        os.environ["FLEXBENCH_N"] = str(max(n for _, n in spec["peer_runs"]))
        _install_probes(probe, model)
        from lmms_eval.evaluator import simple_evaluate
        from lmms_eval.models import get_model
        from lmms_eval.tasks import TaskManager

        for bs, n in spec["peer_runs"]:
            probe.calls.clear()
            try:
                # a fresh model per batch size: lmms-eval's evaluate() ends with lm.clean(), which
                # deletes the weights (reloading is seconds: the files are in the page cache)
                t0 = time.time()
                lm = get_model(model).create_from_arg_string(spec["model_args_str"],
                                                             {"batch_size": bs, "device": spec["device"]})
                if "init_start" not in res["events"]:
                    res["events"].update(init_start=t0, init_end=time.time())
                t1 = time.time()
                simple_evaluate(model=lm, tasks=[TASK], limit=n, batch_size=bs,
                                task_manager=TaskManager("WARNING", include_path=str(TASK_DIR), include_defaults=False),
                                gen_kwargs=f"max_new_tokens={spec['max_tokens']}")
                res["runs"].append(_lmms_run(probe, t1, time.time(), n, batch_size=bs))
            except Exception as e:  # e.g. out of memory at a large batch: keep the smaller ones
                res["runs"].append({"batch_size": bs, "n": n, "ok": False, "error": repr(e)[:500]})
            _free_cuda()
            _write(spec, dict(res, ok=True, partial=True, versions=_versions()))  # survives a timeout
    res["versions"] = _versions()
    return res


def _free_cuda():
    try:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def _lmms_run(probe: Probe, t0: float, t1: float, n: int, batch_size) -> dict:
    ev = probe.calls.get("evaluate", [{}])
    gens = probe.calls.get("engine_generate", [])
    run = {"ok": bool(gens), "n": n, "batch_size": batch_size, "start": t0, "end": t1,
           "evaluate_start": ev[0].get("start"), "evaluate_end": ev[-1].get("end"),
           "engine_calls": len(gens), "engine_s": sum(g["end"] - g["start"] for g in gens if "end" in g),
           "first_engine_start": gens[0]["start"] if gens else None,
           "first_engine_end": gens[0].get("end") if gens else None,
           "out_tokens": sum(g.get("out_tokens", 0) for g in gens),
           "requests": sum(g.get("requests", 0) for g in gens),
           "first_done": probe.first_done}
    prompt = [g["prompt_tokens_mean"] for g in gens if g.get("prompt_tokens_mean")]
    run["prompt_tokens_mean"] = sum(prompt) / len(prompt) if prompt else None
    for key in ("model_generate_until", "flex_prepare"):
        calls = probe.calls.get(key, [])
        run[f"{key}_s"] = sum(c["end"] - c["start"] for c in calls if "end" in c) if calls else None
    if not gens:
        run["error"] = "no engine call was seen (did the model or task fail to load? see the log)"
    elif not run["requests"]:
        run.update(ok=False, error="the engine generated nothing: every request came from a journal (see the log)")
    return run


# ----------------------------------------------------------------------------- hw, ckpt
def run_hw(spec: dict) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    dev = torch.device("cuda")
    x = torch.empty(2 * 2**30, dtype=torch.uint8, device=dev)
    x.random_(0, 255)
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    torch.cuda.synchronize()
    ev0, ev1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 20
    ev0.record()
    for _ in range(reps):
        y.copy_(x)
    ev1.record()
    torch.cuda.synchronize()
    bw = 2 * x.numel() * reps / (ev0.elapsed_time(ev1) / 1e3)
    del x, y
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    ev0.record()
    for _ in range(10):
        a @ b
    ev1.record()
    torch.cuda.synchronize()
    tflops = 2 * 8192**3 * 10 / (ev0.elapsed_time(ev1) / 1e3)
    return {"gpu": torch.cuda.get_device_name(0), "hbm_copy_bytes_per_s": bw, "bf16_matmul_flops": tflops,
            "total_memory_bytes": torch.cuda.get_device_properties(0).total_memory}


def run_ckpt(spec: dict) -> dict:
    sys.path.insert(0, str(HERE))
    import checkpoint

    t0 = time.time()
    d = checkpoint.build(spec["kind"], Path(spec["root"]), weights=spec.get("weights", True))
    marker = json.loads((d / checkpoint.MARKER).read_text())
    return {"path": str(d), "build_s": time.time() - t0, **marker}


def _write(spec: dict, res: dict) -> None:
    res = dict(res, worker_end=time.time())
    Path(spec["result_path"]).write_text(json.dumps(res, indent=1, default=str) + "\n")


WORKERS = {"raw": run_raw, "lmms": run_lmms, "hw": run_hw, "ckpt": run_ckpt, "sweep": run_sweep,
           "hostprof": run_hostprof}


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        res = WORKERS[spec["worker"]](spec)
        res["ok"] = res.get("ok", True)
    except BaseException as e:  # report, never hide
        res = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-4000:]}
    _write(spec, res)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter / engine teardown; the result is written
