"""The `flex` chat model for lmms-eval: Flex-Judge on Qwen2.5-VL / Qwen2.5-Omni checkpoints.

Flow of `generate_until`: every request is rendered (flex_models.render) and its sampling settings
built (flex_models.requests) BEFORE any generation, so a bad document fails fast. Requests already
in the journal (flex_models.journal: resumable judging) are answered from it; the rest stream
through the backend (vLLM: its offline engine loop, a window of requests in flight), their media
decoded (flex_models.media) just before they enter the engine, and each finished judgment is
journaled as it comes back. Outputs are the raw text, <think> included.
"""
from __future__ import annotations

import logging
import sys
import time

from lmms_eval.api.instance import GenerationResult, TokenCounts
from lmms_eval.api.model import lmms
from tqdm import tqdm

from flex_models.args import parse_args
from flex_models.backends import make_backend
from flex_models.family import load_checkpoint
from flex_models.planner import MediaCache, RequestPlanner
from flex_models.requests import Planned, Prepared, share_order

log = logging.getLogger("flex_models")


class FlexJudge(lmms):
    """lmms-eval chat model `flex`. model_args: see flex_models.args.FlexArgs."""

    is_simple = False

    def __init__(self, pretrained: str | None = None, batch_size=1, **kwargs):
        super().__init__()
        raw = dict(kwargs, pretrained=pretrained, batch_size=batch_size)
        self.args = parse_args(raw)  # fails on unknown/contradictory args before any weights load
        self.checkpoint = load_checkpoint(self.args.pretrained)
        self.family = self.checkpoint.family
        self.planner = RequestPlanner(self.args, self.family)
        self.limits = self.planner.limits
        self.timing = {"prepare_s": 0.0, "engine_s": 0.0, "requests": 0}
        self._journal = None
        self._engine_id = None
        self._launch(self.args)
        self.backend = make_backend(self.args, self.checkpoint)
        log.info("flex: %s checkpoint %s on backend %s (rank %d of %d)", self.family, self.args.pretrained,
                 self.args.backend, self.rank, self.world_size)

    def _launch(self, args) -> None:
        """Rank, world size, accelerator and device as lmms-eval's multi-process launch expects them
        (flex_models.distributed); one process: rank 0 of 1 on the engine's own device."""
        from flex_models.distributed import join, launch_from_env, pin_engine_gpus

        launch = launch_from_env()
        self.device = "cpu"
        if launch is None:
            return
        if args.data_parallel_size > 1:
            raise ValueError("model_args data_parallel_size>1 under a multi-process launch: the launch's "
                             f"{launch.world_size} ranks are the data parallelism; drop data_parallel_size")
        self.accelerator, self.device = join(launch)
        self._rank, self._world_size = launch.rank, launch.world_size
        gpus = pin_engine_gpus(launch, args)
        log.info("flex: rank %d of %d (local %d) builds its engine on %s", launch.rank, launch.world_size,
                 launch.local_rank, f"GPUs {','.join(gpus)}" if gpus else "the CPU")

    # ---------------------------------------------------------------- preparation
    def _doc(self, task, split, doc_id):
        try:
            return self.task_dict[task][split][doc_id]
        except (KeyError, IndexError, TypeError):
            return None

    def plan(self, messages, where: str = "", doc=None, gen_kwargs=None) -> Planned:
        return self.planner.plan(messages, where=where, doc=doc, gen_kwargs=gen_kwargs)

    def decode(self, planned: Planned, cache: MediaCache | None = None) -> Prepared:
        return self.planner.decode(planned, cache)

    def prepare(self, messages, where: str = "", doc=None, gen_kwargs=None, cache: MediaCache | None = None) -> Prepared:
        return self.planner.prepare(messages, where=where, doc=doc, gen_kwargs=gen_kwargs, cache=cache)

    def _plan_all(self, requests) -> list["Planned"]:
        out, self._item_keys = [], []
        for req in tqdm(requests, desc="flex: rendering", disable=len(requests) < 2):
            _ctx, doc_to_messages, gen_kwargs, doc_id, task, split = req.args
            where = f"task {task} split {split} doc {doc_id}"
            doc = self._doc(task, split, doc_id)
            p = self.plan(doc_to_messages(doc), where=where, doc=doc, gen_kwargs=gen_kwargs)
            out.append(p)
            self._item_keys.append(_item_key(task, doc, p))
        return out

    # ---------------------------------------------------------------- generation
    def generate_prepared(self, prepared: list[Prepared], progress: bool = True):
        return self.backend.generate(prepared, progress=progress)

    def _stream(self, planned: list["Planned"], todo: list[int]):
        """Yield ``(index, Output)`` for the requests ``todo`` as they finish; media are decoded
        only for the requests about to enter the engine (a window / chunk at a time)."""
        cache = MediaCache(self.args.audio_scaling)
        lazy = ((i, self.decode(planned[i], cache)) for i in todo)
        if hasattr(self.backend, "stream"):
            yield from self.backend.stream(lazy, total=len(todo), progress=self.rank == 0)
            return
        # transformers backend: chunk by chunk
        chunk = self.args.stream_window or max(self.args.batch_size, 1) * 8
        bar = tqdm(total=len(todo), desc="flex: judging", disable=len(todo) < 2 or self.rank != 0)
        batch: list = []
        for item in lazy:
            batch.append(item)
            if len(batch) == chunk:
                yield from zip([i for i, _ in batch], self.generate_prepared([p for _, p in batch], progress=False))
                bar.update(len(batch))
                batch, cache._store = [], {}
        if batch:
            yield from zip([i for i, _ in batch], self.generate_prepared([p for _, p in batch], progress=False))
            bar.update(len(batch))
        bar.close()

    def _engine_identity(self) -> dict:
        """What, besides the request itself, determines an answer (the journal key's engine part)."""
        if self._engine_id is None:
            from flex_models.journal import checkpoint_fingerprint

            self._engine_id = {"checkpoint": checkpoint_fingerprint(self.checkpoint.local_dir),
                               "family": self.family, "backend": self.args.backend, "dtype": self.args.dtype,
                               "seed": self.args.seed, "audio_scaling": self.args.audio_scaling}
        return self._engine_id

    def generate_until(self, requests) -> list:
        t0 = time.perf_counter()
        planned = self._plan_all(requests)
        journal = self._open_journal()
        keys: list = [None] * len(planned)
        done: dict[int, dict] = {}
        if journal is not None:
            from flex_models.journal import request_key

            engine = self._engine_identity()
            for i, p in enumerate(planned):
                keys[i] = request_key(engine, p.prompt, p.media, p.hints, p.spec)
                hit = journal.get(keys[i])
                if hit is not None:
                    done[i] = hit
            print(f"flex: journal {journal.path}: {len(done)} of {len(planned)} requests already judged, "
                  f"{len(planned) - len(done)} to generate", file=sys.stderr, flush=True)
        # the runs (and swapped orders) of one item enter the engine together (requests.share_order)
        todo = share_order(self._item_keys, [i for i in range(len(planned)) if i not in done])
        t1 = time.perf_counter()
        for i, o in self._stream(planned, todo):
            rec = {"texts": o.texts, "prompt_tokens": o.prompt_tokens,
                   "output_tokens": sum(len(t) for t in o.token_ids)}
            if o.cached_tokens is not None:
                self.timing["prompt_tokens"] = self.timing.get("prompt_tokens", 0) + (o.prompt_tokens or 0)
                self.timing["cached_tokens"] = self.timing.get("cached_tokens", 0) + o.cached_tokens
            if journal is not None:
                journal.put(keys[i], **rec)
            done[i] = rec
        t2 = time.perf_counter()
        self.timing["prepare_s"] += t1 - t0
        self.timing["engine_s"] += t2 - t1
        self.timing["requests"] += len(todo)
        self.timing["resumed"] = self.timing.get("resumed", 0) + len(planned) - len(todo)
        results = []
        for i, p in enumerate(planned):
            rec = done[i]
            text = rec["texts"][0] if p.spec.n == 1 else _join_samples(rec["texts"])
            counts = TokenCounts(input_tokens=rec["prompt_tokens"], output_tokens=rec["output_tokens"])
            results.append(GenerationResult(text=text, token_counts=counts))
        return results

    def _open_journal(self):
        from flex_models.journal import Journal, resolve_journal_dir

        folder = resolve_journal_dir(self.args.journal)
        if folder is None:
            return None
        if self._journal is None or self._journal.folder != folder:
            self._journal = Journal(folder, rank=self.rank)
        return self._journal

    def loglikelihood(self, requests):
        raise NotImplementedError("the flex model is a generative judge: loglikelihood tasks are not supported")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("the flex model does not support multi-round generation")


def _item_key(task, doc, planned: Planned):
    """Which item a request judges: a flex task's doc says so (its k runs share ``flex_item``);
    any other task's request is keyed by its prompt and media (repeats of one request)."""
    if isinstance(doc, dict) and "flex_item" in doc:
        return (task, "item", doc["flex_item"])
    media = tuple((kind, tuple(u if isinstance(u, str) else id(u) for u in urls))
                  for kind, urls in sorted(planned.media.items()))
    return (task, planned.prompt, media)


def _join_samples(texts: list[str]) -> str:
    """n > 1 samples travel as one JSON list string (lmms-eval carries one string per request)."""
    import json

    return json.dumps(texts, ensure_ascii=False)
