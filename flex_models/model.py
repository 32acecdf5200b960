"""The `flex` chat model for lmms-eval: Flex-Judge on Qwen2.5-VL / Qwen2.5-Omni checkpoints.

Flow of `generate_until`: every request is rendered (flex_models.render), its media decoded
(flex_models.media) and its sampling settings built (flex_models.requests) BEFORE any
generation, so a bad document fails fast and never costs finished outputs. Then the backend
generates everything (vLLM: one `LLM.generate` call). Outputs are the raw text, <think> included.
"""
from __future__ import annotations

import logging
import time

from lmms_eval.api.instance import GenerationResult, TokenCounts
from lmms_eval.api.model import lmms
from tqdm import tqdm

from flex_models.args import parse_args
from flex_models.backends import make_backend
from flex_models.family import load_checkpoint
from flex_models.media import MediaError, load_audio, load_image, load_video
from flex_models.render import render
from flex_models.requests import Prepared, build_spec

log = logging.getLogger("flex_models")


class MediaCache:
    """Decoded media of one generate_until call, keyed by object identity or path."""

    def __init__(self):
        self._store: dict = {}

    def get(self, kind: str, url, where: str, hints: dict):
        key = (kind, url if isinstance(url, str) else id(url), tuple(sorted(hints.items())))
        hit = self._store.get(key)
        if hit is not None:
            return hit[1]
        if kind == "image":
            value = load_image(url, where)
        elif kind == "audio":
            value = load_audio(url, where)
        else:
            value = load_video(url, where, fps=hints.get("fps"), max_pixels=hints.get("max_pixels"))
        self._store[key] = (url, value)  # keep url alive so id() stays unique
        return value


class FlexJudge(lmms):
    """lmms-eval chat model `flex`. model_args: see flex_models.args.FlexArgs."""

    is_simple = False

    def __init__(self, pretrained: str | None = None, batch_size=1, **kwargs):
        super().__init__()
        raw = dict(kwargs, pretrained=pretrained, batch_size=batch_size)
        self.args = parse_args(raw)  # fails on unknown/contradictory args before any weights load
        self.checkpoint = load_checkpoint(self.args.pretrained)
        self.family = self.checkpoint.family
        self.limits = dict(self.args.limit_mm_per_prompt)
        if self.args.backend == "vllm":
            from flex_models.backends.vllm_backend import media_limits

            self.limits = media_limits(self.args, self.family)
        self.timing = {"prepare_s": 0.0, "engine_s": 0.0, "requests": 0}
        self.pool = None
        if self.args.data_parallel_size > 1:
            from flex_models.parallel import start_pool

            self.backend = None  # engines live in persistent per-GPU workers (flex_models.parallel)
            self.pool = start_pool(self.args, self.checkpoint)  # they build while lmms-eval loads tasks
        else:
            self.backend = make_backend(self.args, self.checkpoint)
        log.info("flex: %s checkpoint %s on backend %s", self.family, self.args.pretrained, self.args.backend)

    # ---------------------------------------------------------------- preparation
    def _doc(self, task, split, doc_id):
        try:
            return self.task_dict[task][split][doc_id]
        except (KeyError, IndexError, TypeError):
            return None

    def prepare(self, messages, where: str = "", doc=None, gen_kwargs=None, cache: MediaCache | None = None) -> Prepared:
        """Render + decode + sampling settings of one request (no generation)."""
        cache = cache or MediaCache()
        r = render(messages, self.family, self.args.assistant_prefix, where=where)
        limits = self.limits
        for kind, urls in r.media.items():
            if kind in limits and len(urls) > limits[kind]:
                raise MediaError(f"{where}: {len(urls)} {kind} items but model_args limit_mm_per_prompt "
                                 f"allows {limits[kind]}")
        doc = doc if isinstance(doc, dict) else {}
        video_doc = doc.get("flex_video") or {}
        media = {}
        for kind, urls in r.media.items():
            decoded = []
            for url, hint in zip(urls, r.hints.get(kind, [{}] * len(urls))):
                h = {**video_doc, **hint} if kind == "video" else {}
                h = {k: v for k, v in h.items() if k in ("fps", "max_pixels")}
                decoded.append(cache.get(kind, url, where, h))
            media[kind] = decoded
        # model_args seed seeds the engine (vLLM LLM(seed=...), torch.manual_seed for hf); a per-request
        # seed only when the task gives one: vLLM's per-request generators cost ~20% decode throughput
        # (benchmarks/inference_gpu_results.md).
        spec = build_spec(gen_kwargs, self.args.max_new_tokens, doc.get("flex_seed"), None, where,
                          cap_max_new_tokens=self.args.max_new_tokens_cap)
        return Prepared(prompt=r.prompt, media=media, spec=spec, where=where)

    def _prepare_all(self, requests) -> list[Prepared]:
        cache = MediaCache()
        out = []
        for req in tqdm(requests, desc="flex: rendering + media", disable=len(requests) < 2):
            _ctx, doc_to_messages, gen_kwargs, doc_id, task, split = req.args
            where = f"task {task} split {split} doc {doc_id}"
            doc = self._doc(task, split, doc_id)
            messages = doc_to_messages(doc)
            out.append(self.prepare(messages, where=where, doc=doc, gen_kwargs=gen_kwargs, cache=cache))
        return out

    # ---------------------------------------------------------------- generation
    def generate_prepared(self, prepared: list[Prepared], progress: bool = True):
        if self.args.data_parallel_size > 1:
            from flex_models.parallel import run_data_parallel

            return run_data_parallel(self.args, self.checkpoint, prepared, self.args.data_parallel_size, progress,
                                     pool=self.pool)
        return self.backend.generate(prepared, progress=progress)

    def generate_until(self, requests) -> list:
        t0 = time.perf_counter()
        prepared = self._prepare_all(requests)
        t1 = time.perf_counter()
        outputs = self.generate_prepared(prepared, progress=True)
        t2 = time.perf_counter()
        self.timing["prepare_s"] += t1 - t0
        self.timing["engine_s"] += t2 - t1
        self.timing["requests"] += len(prepared)
        results = []
        for p, o in zip(prepared, outputs):
            text = o.texts[0] if p.spec.n == 1 else _join_samples(o.texts)
            counts = TokenCounts(input_tokens=o.prompt_tokens, output_tokens=sum(len(t) for t in o.token_ids))
            results.append(GenerationResult(text=text, token_counts=counts))
        return results

    def loglikelihood(self, requests):
        raise NotImplementedError("the flex model is a generative judge: loglikelihood tasks are not supported")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("the flex model does not support multi-round generation")


def _join_samples(texts: list[str]) -> str:
    """n > 1 samples travel as one JSON list string (lmms-eval carries one string per request)."""
    import json

    return json.dumps(texts, ensure_ascii=False)
