"""vLLM's async engine (`AsyncLLM`) as a flex backend: continuous batching for the judge server
(flex_judge.serving) and vLLM's own data parallelism (`data_parallel_size`) for the `flex` model.

The engine lives on an asyncio loop in a background thread of its own, whoever uses it:
- the server awaits :meth:`AsyncVLLMBackend.generate` / iterates :meth:`AsyncVLLMBackend.stream_text`
  from uvicorn's loop; every request is added to the engine the moment it is called (the engine
  schedules it into the running batch at its next step);
- the `flex` model calls the synchronous :meth:`stream` / :meth:`generate_all` (the interface of
  `VLLMBackend.stream` / `VLLMBackend.generate`), which keep a bounded window of requests in the
  engine while pulling the caller's lazy iterator.

Requests are the offline backend's (`vllm_prompt`, `sampling_params`) and so are the engine
settings (`engine_kwargs`), and a finished text is decoded by `VLLMBackend._text` (a full decode of
the generated ids, then the stop cut): the same request gives the same text on both paths.

CPU (checked with vLLM's CPU build 0.32 on a 2-core machine): `AsyncLLM` always runs its engine core
in a separate process (its client is the multiprocessing one, whatever
VLLM_ENABLE_V1_MULTIPROCESSING says), which is spawned, so the program that builds it needs an
`if __name__ == "__main__":` guard. On CPU the engine core is told to run the model itself
(`distributed_executor_backend="uni"`) instead of spawning a further worker process: one process and
one vLLM import less (~15 s of start-up on 2 cores). The CPU environment of the offline backend
(`VLLM_CPU_OMP_THREADS_BIND=nobind`, `VLLM_HOST_IP=127.0.0.1`) and its KV-cache size
(`kv_cache_memory_bytes`, from `engine_kwargs`) are needed as well; start-up then takes ~30 s with a
tiny checkpoint (vs ~3 s for the single-process `LLM`: the spawned process imports vLLM again).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from flex_models.backends.vllm_backend import CPU_ENV, VLLMBackend, engine_kwargs, on_cpu, sampling_params, vllm_prompt
from flex_models.requests import Output, Prepared

log = logging.getLogger("flex_models")

_ids = itertools.count()


@dataclass
class AsyncOutput(Output):
    """An Output plus what the server reports: the prompt token ids the engine used and why each
    sample stopped ("stop" | "length")."""
    prompt_token_ids: list = field(default_factory=list)
    finish_reasons: list = field(default_factory=list)


def async_engine_kwargs(args, family: str) -> dict:
    """The offline engine's settings (`engine_kwargs`) plus vLLM data parallelism."""
    kw = engine_kwargs(args, family)
    kw["data_parallel_size"] = args.data_parallel_size
    if on_cpu():
        # the engine core process runs the model itself (no extra worker process; see the module doc)
        kw.setdefault("distributed_executor_backend", "uni")
    return kw


class AsyncVLLMBackend:
    name = "vllm"

    def __init__(self, args, checkpoint):
        if on_cpu():
            for k, v in CPU_ENV.items():
                if k != "VLLM_ENABLE_V1_MULTIPROCESSING":  # AsyncLLM is multiprocess anyway
                    os.environ.setdefault(k, v)
        # spawn, never fork, the engine core: a fork after CUDA was touched fails, and a fork of a
        # process with threads (uvicorn, this backend's loop) is unsafe
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from flex_models.extras import require

        require("vllm", "the async vLLM backend")
        self.args, self.family = args, checkpoint.family
        self.kwargs = async_engine_kwargs(args, checkpoint.family)
        self._uid = next(_ids)
        self._calls = 0
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="flex-async-engine")
        self._thread.start()
        log.info("flex: building vLLM async engine %s", self.kwargs)
        try:
            self.engine, self.tokenizer = self._call(self._build())
        except BaseException:
            self._stop_loop()
            raise

    # ------------------------------------------------------------------ engine loop plumbing
    async def _build(self):
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**self.kwargs))
        tok = engine.get_tokenizer()
        if asyncio.iscoroutine(tok):  # older vLLM: async get_tokenizer
            tok = await tok
        return engine, tok

    def _submit(self, coro) -> concurrent.futures.Future:
        if self._closed:
            coro.close()
            raise RuntimeError("flex: the async vLLM backend is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _call(self, coro):
        return self._submit(coro).result()

    def _stop_loop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def close(self, timeout: float | None = None) -> None:
        """Abort what is in flight and shut the engine (its process included) down."""
        if self._closed:
            return
        engine = getattr(self, "engine", None)
        if engine is not None:
            async def _shutdown():
                for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                    t.cancel()  # in-flight requests: their generate() aborts them in the engine
                await asyncio.sleep(0)
                engine.shutdown()

            try:
                self._call(_shutdown())
            except Exception as e:  # noqa: BLE001 - shutting down anyway
                log.warning("flex: async engine shutdown: %s", e)
            # its __del__ shuts down again, at interpreter exit when vLLM's globals are gone: once is enough
            engine.shutdown = lambda *a, **k: None
            self.engine = None
        self._closed = True
        self._stop_loop()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    def max_num_seqs(self) -> int:
        cfg = getattr(getattr(self.engine, "vllm_config", None), "scheduler_config", None)
        return (getattr(cfg, "max_num_seqs", None) or 256) * max(self.args.data_parallel_size, 1)

    def window(self) -> int:
        """Requests kept in the engine at once by :meth:`stream` (as VLLMBackend.window)."""
        return self.args.stream_window or max(2 * self.max_num_seqs(), 64)

    _text = VLLMBackend._text  # the offline backend's decode, shared

    def _output(self, final, spec) -> AsyncOutput:
        return AsyncOutput(texts=[self._text(o, spec) for o in final.outputs],
                           token_ids=[list(o.token_ids) for o in final.outputs],
                           prompt_tokens=len(final.prompt_token_ids or []),
                           prompt_token_ids=list(final.prompt_token_ids or []),
                           finish_reasons=[o.finish_reason for o in final.outputs])

    # ------------------------------------------------------------------ on the engine loop
    async def _run(self, prepared: Prepared, request_id: str) -> AsyncOutput:
        from vllm.sampling_params import RequestOutputKind

        params = sampling_params(prepared.spec)
        params.output_kind = RequestOutputKind.FINAL_ONLY
        final = None
        async for out in self.engine.generate(vllm_prompt(prepared), params, request_id):
            final = out
        if final is None or not final.finished:
            raise RuntimeError(f"flex: request {request_id} ended without a final output")
        return self._output(final, prepared.spec)

    async def _run_stream(self, prepared: Prepared, request_id: str, push):
        """Push ("delta", text) for each new piece of text, then ("final", AsyncOutput)."""
        from vllm.sampling_params import RequestOutputKind

        params = sampling_params(prepared.spec)
        params.output_kind = RequestOutputKind.DELTA
        params.detokenize = True  # text deltas come from vLLM's incremental detokenizer
        ids: list[int] = []
        last = None
        async for out in self.engine.generate(vllm_prompt(prepared), params, request_id):
            last = out
            o = out.outputs[0]
            ids.extend(o.token_ids)
            if o.text:
                push(("delta", o.text))
        if last is None:
            raise RuntimeError(f"flex: request {request_id} produced no output")
        o = last.outputs[0]

        class _Done:  # the whole completion, for the final (full-decode) text
            token_ids, finish_reason = ids, o.finish_reason

        last.outputs = [_Done]
        push(("final", self._output(last, prepared.spec)))

    # ------------------------------------------------------------------ async API (the server)
    def generate(self, prepared, request_id: str | None = None, progress: bool = True):
        """Both interfaces under one name: ``generate(list[Prepared], progress) -> list[Output]``
        (synchronous, in order, as VLLMBackend.generate) and ``await generate(Prepared, request_id)
        -> AsyncOutput`` (one request, see :meth:`agenerate`)."""
        if isinstance(prepared, Prepared):
            if request_id is None:
                raise TypeError("generate(Prepared, request_id): a request id is needed")
            return self.agenerate(prepared, request_id)
        return self.generate_all(list(prepared), progress=progress)

    async def agenerate(self, prepared: Prepared, request_id: str) -> AsyncOutput:
        """One request, added to the engine now; awaitable from any event loop. Cancelling the
        awaiting task aborts the request in the engine."""
        return await asyncio.wrap_future(self._submit(self._run(prepared, request_id)))

    async def stream_text(self, prepared: Prepared, request_id: str):
        """Async generator of ``(delta_text, None)`` while the request generates, then
        ``("", AsyncOutput)`` (its full-decode text, as :meth:`generate` gives). Closing the
        generator early aborts the request."""
        caller = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def push(item):
            caller.call_soon_threadsafe(q.put_nowait, item)

        fut = self._submit(self._run_stream(prepared, request_id, push))
        fut.add_done_callback(lambda f: push(("end", f)))
        try:
            while True:
                kind, value = await q.get()
                if kind == "delta":
                    yield value, None
                elif kind == "final":
                    yield "", value
                else:
                    value.result()  # re-raise the request's error, if any
                    return
        finally:
            if not fut.done():
                fut.cancel()

    # ------------------------------------------------------------------ sync API (the flex model)
    def stream(self, requests, total: int | None = None, progress: bool = True):
        """Feed ``(index, Prepared)`` pairs (a lazy iterator, pulled in this thread: media are
        decoded here, off the engine loop) into the engine, keeping :meth:`window` requests in it,
        and yield ``(index, Output)`` as each request finishes. A failing request raises here
        (the others are aborted)."""
        from tqdm import tqdm

        self._calls += 1
        call = f"flexa{self._uid}-{self._calls}"
        done: queue.Queue = queue.Queue()
        inflight: dict[concurrent.futures.Future, int] = {}
        source = iter(requests)
        exhausted = False
        window = self.window()
        bar = tqdm(total=total, desc="flex: judging", disable=not progress or not total, dynamic_ncols=True)
        try:
            while True:
                while not exhausted and len(inflight) < window:
                    try:
                        i, p = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    fut = self._submit(self._run(p, f"{call}-{i}"))
                    inflight[fut] = i
                    fut.add_done_callback(done.put)
                if not inflight:
                    break
                fut = done.get()
                i = inflight.pop(fut)
                out = fut.result()
                bar.update(1)
                yield i, out
        finally:
            bar.close()
            for fut in inflight:  # interrupted (or the consumer stopped): abort what is in flight
                fut.cancel()

    def generate_all(self, prepared: list[Prepared], progress: bool = True) -> list[Output]:
        t0 = time.perf_counter()
        out: list = [None] * len(prepared)
        for i, o in self.stream(enumerate(prepared), total=len(prepared), progress=progress):
            out[i] = o
        self.last_timing = {"engine_s": time.perf_counter() - t0}
        return out
