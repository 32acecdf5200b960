"""One request's path before the engine, shared by the `flex` lmms-eval model, the Python API and the
judge server: render the messages (flex_models.render), check the media limits, build the sampling
settings (flex_models.requests.build_spec), and decode the media (flex_models.media) just before the
request enters the engine. Whoever holds a RequestPlanner prompts the judge exactly as the `flex`
model does.
"""
from __future__ import annotations

from flex_models.media import MediaError, load_audio, load_image, load_video
from flex_models.render import render
from flex_models.requests import Planned, Prepared, build_spec


class MediaCache:
    """Decoded media of one generate_until call, keyed by object identity or path."""

    def __init__(self, audio_scaling: str = "released"):
        self._store: dict = {}
        self.audio_scaling = audio_scaling  # model_args audio_scaling

    def get(self, kind: str, url, where: str, hints: dict):
        key = (kind, url if isinstance(url, str) else id(url), tuple(sorted(hints.items())))
        hit = self._store.get(key)
        if hit is not None:
            return hit[1]
        if kind == "image":
            value = load_image(url, where)
        elif kind == "audio":
            value = load_audio(url, where, scaling=self.audio_scaling)
        else:
            value = load_video(url, where, fps=hints.get("fps"), max_pixels=hints.get("max_pixels"))
        self._store[key] = (url, value)  # keep url alive so id() stays unique
        return value


class RequestPlanner:
    """plan / decode / prepare of requests for one checkpoint family under one set of model_args."""

    def __init__(self, args, family: str):
        self.args, self.family = args, family
        self.limits = dict(args.limit_mm_per_prompt)
        if args.backend == "vllm":
            from flex_models.backends.vllm_backend import media_limits

            self.limits = media_limits(args, family)

    def plan(self, messages, where: str = "", doc=None, gen_kwargs=None) -> Planned:
        """Render + sampling settings of one request; media are referenced, not decoded yet."""
        r = render(messages, self.family, self.args.assistant_prefix, where=where)
        limits = self.limits
        for kind, urls in r.media.items():
            if kind in limits and len(urls) > limits[kind]:
                raise MediaError(f"{where}: {len(urls)} {kind} items but model_args limit_mm_per_prompt "
                                 f"allows {limits[kind]}")
        doc = doc if isinstance(doc, dict) else {}
        video_doc = doc.get("flex_video") or {}
        hints = {}
        for kind, urls in r.media.items():
            hs = []
            for hint in r.hints.get(kind, [{}] * len(urls)):
                h = {**video_doc, **hint} if kind == "video" else {}
                hs.append({k: v for k, v in h.items() if k in ("fps", "max_pixels")})
            hints[kind] = hs
        # model_args seed seeds the engine (vLLM LLM(seed=...), torch.manual_seed for hf); a per-request
        # seed only when the task gives one (its runs). Per-request seeds cost ~20% decode throughput
        # in round 1 (benchmarks/inference_gpu_results.md) and nothing measurable in round 4
        # (docs/benchmarks.md): the choice keeps unseeded tasks' requests as lmms-eval sends them.
        spec = build_spec(gen_kwargs, self.args.max_new_tokens, doc.get("flex_seed"), None, where,
                          cap_max_new_tokens=self.args.max_new_tokens_cap)
        return Planned(prompt=r.prompt, media=r.media, hints=hints, spec=spec, where=where)

    def decode(self, planned: Planned, cache: MediaCache | None = None) -> Prepared:
        """Decode the media of a planned request (the model's one place that reads media)."""
        cache = cache or MediaCache(self.args.audio_scaling)
        media = {kind: [cache.get(kind, url, planned.where, h) for url, h in zip(urls, planned.hints[kind])]
                 for kind, urls in planned.media.items()}
        return Prepared(prompt=planned.prompt, media=media, spec=planned.spec, where=planned.where)

    def prepare(self, messages, where: str = "", doc=None, gen_kwargs=None, cache: MediaCache | None = None) -> Prepared:
        """Render + decode + sampling settings of one request (no generation)."""
        return self.decode(self.plan(messages, where=where, doc=doc, gen_kwargs=gen_kwargs), cache)
