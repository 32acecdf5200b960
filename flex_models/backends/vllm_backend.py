"""vLLM backend: the engine is built once; requests stream through vLLM's offline engine loop and come
back one by one as they finish (flex_models.model journals each one)."""
from __future__ import annotations

import logging
import os
import time

from flex_models.media import AUDIO_SR, video_metadata
from flex_models.requests import Output, Prepared, cut_at_stop

log = logging.getLogger("flex_models")

# Defaults that make vLLM's CPU engine start fast, single-process (ENVIRONMENT.md).
CPU_ENV = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_HOST_IP": "127.0.0.1",
}
CPU_KV_CACHE_BYTES = 64 * 2**20
# GPU engine defaults measured on the judge workload (docs/benchmarks.md, H200, 2026-11-29): 128-token
# KV blocks let FlashAttention 3 read the paged cache in whole tiles: +8 % judgments/s, +15 % decode
# against vLLM's 16 on 256 image judgments (the shared system prompt is still cached in whole blocks).
GPU_DEFAULTS = {"block_size": 128}
# Per-prompt media limits when model_args limit_mm_per_prompt is not given: the largest any
# Flex-Judge protocol needs (GenAI-Bench editing 3 images, video 2; VoxSim 2 audios).
DEFAULT_LIMITS = {"vl": {"image": 3, "video": 2}, "omni": {"image": 3, "video": 2, "audio": 2}}


def gpu_count() -> int:
    """GPUs this process sees, counted through NVML, as vLLM itself does from its import on
    (vllm/env_override.py): torch's CUDA-runtime count initialises the driver, and vLLM then forks
    its engine process into "Cannot re-initialize CUDA in forked subprocess"."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def on_cpu() -> bool:
    return gpu_count() == 0


def media_limits(args, family: str) -> dict:
    limits = dict(DEFAULT_LIMITS[family])
    limits.update(args.limit_mm_per_prompt)
    if family == "vl" and limits.get("audio"):
        raise ValueError("model_args limit_mm_per_prompt: audio is not accepted by a Qwen2.5-VL checkpoint")
    return limits


def engine_kwargs(args, family: str) -> dict:
    """model_args -> vllm.LLM keyword arguments (engine settings only)."""
    kw = dict(
        model=args.pretrained, dtype=args.dtype, seed=args.seed,
        tensor_parallel_size=args.tensor_parallel_size, trust_remote_code=args.trust_remote_code,
        limit_mm_per_prompt=media_limits(args, family), enforce_eager=args.enforce_eager,
    )
    optional = {"max_model_len": args.max_model_len, "max_num_seqs": args.max_num_seqs,
                "enable_prefix_caching": args.enable_prefix_caching,
                "kv_cache_memory_bytes": args.kv_cache_memory_bytes, "load_format": args.load_format}
    kw.update({k: v for k, v in optional.items() if v is not None})
    if on_cpu():
        kw.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
        # vLLM's CPU sampler cannot rewind a seeded generator after a partial (chunked) prefill
        # ("CPU Generator does not use offset"): schedule whole prompts on CPU.
        kw.setdefault("enable_chunked_prefill", False)
        if "enforce_eager" not in args.explicit():
            kw["enforce_eager"] = True  # CPU torch.compile warm-up costs ~40 s per engine
    else:
        kw["gpu_memory_utilization"] = args.gpu_memory_utilization
        for k, v in GPU_DEFAULTS.items():
            kw.setdefault(k, v)
    return kw


def sampling_params(spec):
    """vLLM SamplingParams of one request. The text of a judgment is decoded once, from its token
    ids, when it finishes (`VLLMBackend._text`), so vLLM's per-step incremental detokenizer is
    switched off unless stop strings need it: on the judge workload it kept vLLM's front-end
    process 100 % busy while the engine core sat idle (benchmarks/inference_gpu_h200_r3_results.md)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=spec.n, temperature=spec.temperature, top_p=spec.top_p if not spec.greedy else 1.0,
        top_k=spec.top_k if not spec.greedy else -1, max_tokens=spec.max_new_tokens,
        seed=spec.seed, stop=list(spec.stop) or None,
        include_stop_str_in_output=spec.include_stop, skip_special_tokens=True,
        min_tokens=spec.min_new_tokens, ignore_eos=spec.ignore_eos, detokenize=bool(spec.stop),
    )


def vllm_prompt(p: Prepared) -> dict:
    item: dict = {"prompt": p.prompt}
    mm = {}
    if p.media.get("image"):
        mm["image"] = list(p.media["image"])
    if p.media.get("audio"):
        mm["audio"] = [(a, AUDIO_SR) for a in p.media["audio"]]  # already 16 kHz
    if p.media.get("video"):
        # frames already sampled at the protocol fps; metadata lets the processor time them
        mm["video"] = [(frames, video_metadata(meta)) for frames, meta in p.media["video"]]
    if mm:
        item["multi_modal_data"] = mm
    return item


class VLLMBackend:
    name = "vllm"

    def __init__(self, args, checkpoint):
        if on_cpu():
            from flex_models.distributed import launch_from_env

            env = dict(CPU_ENV)
            if launch_from_env() is not None:
                # under lmms-eval's multi-process launch, the harness's gloo group is torch.distributed's
                # default group, and an in-process engine would build its own parallel groups on it:
                # each rank's engine gets a process of its own, as on a GPU
                env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
            for k, v in env.items():
                os.environ.setdefault(k, v)
        from flex_models.extras import require

        LLM = require("vllm", "model_args backend=vllm (use backend=hf for transformers)").LLM
        self.args, self.family = args, checkpoint.family
        self.kwargs = engine_kwargs(args, checkpoint.family)
        log.info("flex: building vLLM engine %s", self.kwargs)
        t0 = time.perf_counter()
        self.llm = LLM(**self.kwargs)
        self.init_s = time.perf_counter() - t0  # LLM() alone (benchmarks compare start-up with it)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prepared: list[Prepared], progress: bool = True) -> list[Output]:
        """All requests in order (one engine loop over all of them)."""
        t0 = time.perf_counter()
        out: list = [None] * len(prepared)
        for i, o in self.stream(enumerate(prepared), total=len(prepared), progress=progress):
            out[i] = o
        self.last_timing = {"engine_s": time.perf_counter() - t0}
        return out

    def window(self) -> int:
        """Requests kept in the engine at once: twice what the scheduler can run, so every step
        has full batches (the same as one `LLM.generate` over everything) while media are decoded
        only for the requests about to run."""
        if self.args.stream_window:
            return self.args.stream_window
        max_seqs = getattr(getattr(self.llm.llm_engine, "vllm_config", None), "scheduler_config", None)
        max_seqs = getattr(max_seqs, "max_num_seqs", None) or 256
        return max(2 * max_seqs, 64)

    def stream(self, requests, total: int | None = None, progress: bool = True):
        """Feed ``(index, Prepared)`` pairs (a lazy iterator: media are decoded when pulled) into the
        engine, keeping :meth:`window` requests in it, and yield ``(index, Output)`` as each request
        finishes. The loop is vLLM's own offline loop through LLMEngine's public methods
        (`add_request` / `step` / `abort_request`, as `LLM.generate` runs it), so the engine schedules
        exactly as it would for one big call."""
        from tqdm import tqdm
        from vllm.sampling_params import RequestOutputKind

        engine = self.llm.llm_engine
        if engine.has_unfinished_requests():
            raise RuntimeError("flex: the vLLM engine has unfinished requests from another caller")
        window = self.window()
        self._calls = getattr(self, "_calls", 0) + 1
        pending: dict[str, tuple[int, Prepared]] = {}
        source = iter(requests)
        exhausted = False
        bar = tqdm(total=total, desc="flex: judging", disable=not progress or not total, dynamic_ncols=True)
        try:
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        i, p = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    rid = f"flex{self._calls}-{i}"
                    params = sampling_params(p.spec)
                    params.output_kind = RequestOutputKind.FINAL_ONLY
                    # a raw prompt dict (vLLM's documented PromptType) is what add_request takes on
                    # every release from the GPU pin (0.26) to the CPU build (0.32); 0.32 logs once that
                    # raw prompts are deprecated in favour of its Renderer, which 0.26 does not have
                    engine.add_request(rid, vllm_prompt(p), params)
                    pending[rid] = (i, p)
                if not pending:
                    break
                for r in engine.step():
                    if not r.finished or r.request_id not in pending:
                        continue
                    i, p = pending.pop(r.request_id)
                    bar.update(1)
                    yield i, Output(texts=[self._text(o, p.spec) for o in r.outputs],
                                    token_ids=[list(o.token_ids) for o in r.outputs],
                                    prompt_tokens=len(r.prompt_token_ids or []),
                                    cached_tokens=getattr(r, "num_cached_tokens", None))
        finally:
            bar.close()
            if pending:  # interrupted (or the consumer stopped): leave a clean engine behind
                engine.abort_request(list(pending))

    def _text(self, completion, spec) -> str:
        """Full decode of the generated ids, then the stop cut: the same text the hf backend
        gives (vLLM's incremental detokenizer holds back a trailing partial UTF-8 character)."""
        text = self.tokenizer.decode(list(completion.token_ids), skip_special_tokens=True)
        return cut_at_stop(text, spec.stop, spec.include_stop)
