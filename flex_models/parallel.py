"""Data parallel over N vLLM engines that live as long as the model: one worker process per GPU
group, each building its engine ONCE and then serving every `generate_until` call.

`EnginePool` starts the workers (`python -m flex_models.parallel ADDRESS RANK`, CUDA_VISIBLE_DEVICES
set to its GPUs); they connect back over a local socket, build their engines in parallel (while
lmms-eval loads its tasks, when the pool is started at model init) and wait for work. A call streams:
request k goes to worker k % N (a fixed assignment, so a run is reproducible), one sender thread
per worker feeds it as the requests are decoded, each worker runs them through its engine's offline
loop (`VLLMBackend.stream`) and sends every judgment back the moment it finishes, so the model
journals it at once. Each call's per-worker timings are kept in `EnginePool.calls`
(benchmarks/inference_gpu.py reports them). A call that ends early (an error, an interrupted
consumer) closes the pool: its workers' state is unknown. The workers end when the model process
exits or `close()` is called.
"""
from __future__ import annotations

import atexit
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from multiprocessing.connection import Client, Listener, wait
from pathlib import Path


SEND_AHEAD = 32  # decoded requests queued per worker beyond what its socket holds
_DONE = object()


def _gpu_groups(n_workers: int, tp: int) -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(i) for i in range(n_workers * tp)]
    if len(gpus) < n_workers * tp:
        raise ValueError(f"data_parallel_size={n_workers} x tensor_parallel_size={tp} needs "
                         f"{n_workers * tp} GPUs; CUDA_VISIBLE_DEVICES has {len(gpus)}")
    return [",".join(gpus[w * tp:(w + 1) * tp]) for w in range(n_workers)]


class WorkerError(RuntimeError):
    """A data-parallel worker failed to build its engine or to generate."""


class EnginePool:
    """N persistent engine workers; `generate(prepared)` -> outputs in request order."""

    def __init__(self, args, checkpoint, n_workers: int):
        self.n = n_workers
        worker_args = replace(args, data_parallel_size=1)
        worker_args._explicit = set(args.explicit())  # replace() drops it; CPU defaults read it
        groups = _gpu_groups(n_workers, args.tensor_parallel_size)
        self._tmp = tempfile.TemporaryDirectory(prefix="flex_dp_")
        address = str(Path(self._tmp.name) / "pool.sock")
        self._key = secrets.token_bytes(16)
        self._listener = Listener(address, family="AF_UNIX", authkey=self._key)
        self.started, self.groups = time.time(), groups
        self.procs, self.conns = [], [None] * n_workers
        for rank in range(n_workers):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES=groups[rank], FLEX_DP_AUTHKEY=self._key.hex())
            self.procs.append(subprocess.Popen([sys.executable, "-m", "flex_models.parallel", address, str(rank)],
                                               env=env))
        self.ready: list[dict | None] = [None] * n_workers
        self.calls: list[dict] = []
        self._closed = False
        self._accepted = threading.Event()
        self._accept_error: BaseException | None = None
        threading.Thread(target=self._accept, args=(worker_args, checkpoint), daemon=True).start()
        atexit.register(self.close)

    def _accept(self, worker_args, checkpoint):
        try:
            for _ in range(self.n):
                conn = self._listener.accept()
                rank = conn.recv()
                conn.send((worker_args, checkpoint))
                self.conns[rank] = conn
        except BaseException as e:  # surfaced by the first generate
            self._accept_error = e
        self._accepted.set()

    def _recv(self, rank: int, what: str):
        try:
            msg = self.conns[rank].recv()
        except (EOFError, OSError):
            code = self.procs[rank].wait()
            raise WorkerError(f"data-parallel worker {rank} (GPUs {self._gpus(rank)}) exited with code {code} "
                              f"while {what}; its log is above") from None
        if isinstance(msg, dict) and "error" in msg:
            raise WorkerError(f"data-parallel worker {rank} (GPUs {self._gpus(rank)}) failed while {what}:\n"
                              f"{msg['error']}")
        return msg

    def _gpus(self, rank: int) -> str:
        return self.groups[rank]

    def wait_ready(self) -> list[dict]:
        """Block until every worker has built its engine (at most once per pool)."""
        if all(self.ready):
            return self.ready
        while not self._accepted.wait(1.0):
            dead = [r for r, p in enumerate(self.procs) if p.poll() is not None]
            if dead:
                raise WorkerError(f"data-parallel workers {dead} exited (codes "
                                  f"{[self.procs[r].returncode for r in dead]}) before connecting")
        if self._accept_error is not None:
            raise WorkerError(f"data-parallel workers could not connect: {self._accept_error!r}")
        for rank in range(self.n):
            if self.ready[rank] is None:
                self.ready[rank] = self._recv(rank, "building its engine")
        return self.ready

    def stream(self, items, total: int | None = None, progress: bool = True):
        """Yield ``(index, Output)`` for ``(index, Prepared)`` items (a lazy iterator: media are
        decoded when pulled) as the workers finish them; item k goes to worker k % N."""
        if self._closed:
            raise WorkerError("the data-parallel pool was closed (an earlier call ended early); build a new model")
        self.wait_ready()
        from tqdm import tqdm

        t0 = time.time()
        queues = [queue.Queue(maxsize=SEND_AHEAD) for _ in range(self.n)]
        counts, failed, stop = [0] * self.n, [], threading.Event()

        def put(rank, item):
            while not stop.is_set():
                try:
                    queues[rank].put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def dispatch():  # pulls (and so decodes) the requests in order
            try:
                for k, item in enumerate(items):
                    if stop.is_set():
                        break
                    put(k % self.n, item)
                    counts[k % self.n] += 1
            except BaseException as e:  # re-raised by the consumer below
                failed.append(e)
            for rank in range(self.n):
                put(rank, _DONE)

        def send(rank):
            conn, done = self.conns[rank], False
            try:
                while not done and not stop.is_set():
                    batch = []
                    item = queues[rank].get()
                    while item is not _DONE:
                        batch.append(item)
                        if len(batch) == SEND_AHEAD:
                            break
                        try:
                            item = queues[rank].get_nowait()
                        except queue.Empty:
                            break
                    done = item is _DONE
                    if batch:
                        conn.send(("items", batch))
                    if done:
                        conn.send(("done",))
            except OSError:  # the worker is gone: the consumer reports it
                pass

        for rank in range(self.n):
            self.conns[rank].send(("call",))
        threads = [threading.Thread(target=dispatch, daemon=True)]
        threads += [threading.Thread(target=send, args=(r,), daemon=True) for r in range(self.n)]
        for t in threads:
            t.start()
        bar = tqdm(total=total, desc="flex: judging", disable=not progress or not total, dynamic_ncols=True)
        workers: list = [None] * self.n
        live = {id(c): r for r, c in enumerate(self.conns)}
        try:
            while live:
                if failed:
                    raise failed[0]
                ready = wait([self.conns[r] for r in live.values()], timeout=0.5)
                for conn in ready:
                    rank = live[id(conn)]
                    msg = self._recv(rank, "generating")
                    if msg[0] == "out":
                        bar.update(1)
                        yield msg[1], msg[2]
                    else:  # ("end", timing): this worker judged everything it was sent
                        workers[rank] = dict(msg[1], rank=rank, requests=counts[rank], received=time.time())
                        del live[id(conn)]
            if failed:
                raise failed[0]
        finally:
            stop.set()
            bar.close()
            if live or failed:  # ended early: the workers hold requests and messages; stop them now
                self.close(abort=True)
        self.calls.append({"start": t0, "end": time.time(), "requests": sum(counts), "workers": workers})

    def generate(self, prepared: list, progress: bool = True) -> list:
        out: list = [None] * len(prepared)
        for i, o in self.stream(enumerate(prepared), total=len(prepared), progress=progress):
            out[i] = o
        return out

    def close(self, abort: bool = False):
        """Stop the workers: those still building their engine (and all of them with `abort`, after
        a call that ended early) are killed with their engine processes; the others are asked to exit."""
        if self._closed:
            return
        self._closed = True
        for rank, p in enumerate(self.procs):
            if abort or self.ready[rank] is None:
                _kill_tree(p)
        for conn in self.conns:
            try:
                if conn is not None:
                    conn.send(None)
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_tree(p)
        self.conns = [None] * self.n
        self._listener.close()
        self._tmp.cleanup()
        _POOLS.pop(id(self), None)


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill a worker and the engine processes it started."""
    try:
        import psutil

        kids = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # gone already, or no psutil
        kids = []
    for p in [*kids, proc]:
        try:
            p.kill()
        except Exception:
            pass
    proc.wait()


_POOLS: dict[int, EnginePool] = {}
_EARLY: dict = {}  # the pool `flex-judge eval` started before lmms-eval's imports, until a model adopts it
_HARNESS_ARGS = ("batch_size", "max_batch_size", "device")  # lmms-eval adds these; no engine reads them


def start_pool(args, checkpoint) -> EnginePool:
    """Start the workers now (engine builds run in the background); one pool per model."""
    pool = EnginePool(args, checkpoint, args.data_parallel_size)
    _POOLS[id(pool)] = pool
    return pool


def pools() -> list[EnginePool]:
    return list(_POOLS.values())


def _engine_view(args) -> dict:
    from dataclasses import asdict

    return {k: v for k, v in asdict(args).items() if k not in _HARNESS_ARGS}


def start_early(args, checkpoint) -> EnginePool:
    """Start the engine worker(s) for these model_args now (`flex-judge eval` does, before
    importing lmms-eval), so that the engine build overlaps the harness's own start-up; the
    `flex` model built with the same model_args adopts them (`adopt_early`)."""
    old = _EARLY.get("pool")
    if old is not None and not old._closed and _EARLY.get("args") == _engine_view(args) \
            and _EARLY.get("pretrained") == checkpoint.pretrained:
        return old  # already building for these model_args
    discard_early()
    pool = start_pool(args, checkpoint)
    _EARLY.update(pool=pool, args=_engine_view(args), pretrained=checkpoint.pretrained)
    return pool


def discard_early() -> None:
    """Close the early pool if no model adopted it."""
    pool = _EARLY.pop("pool", None)
    _EARLY.clear()
    if pool is not None:
        pool.close()


def adopt_early(args, checkpoint) -> EnginePool | None:
    """The early pool, if it was started for the same checkpoint and model_args (the harness's
    batch size aside); a pool started for other settings is closed."""
    pool = _EARLY.pop("pool", None)
    if pool is None:
        return None
    same = _EARLY.pop("args") == _engine_view(args) and _EARLY.pop("pretrained") == checkpoint.pretrained
    _EARLY.clear()
    if same and not pool._closed:
        return pool
    pool.close()
    return None


def _worker(address: str, rank: int) -> int:
    conn = Client(address, family="AF_UNIX", authkey=bytes.fromhex(os.environ.pop("FLEX_DP_AUTHKEY")))
    conn.send(rank)
    args, checkpoint = conn.recv()
    t0 = time.time()
    try:
        from flex_models.backends import make_backend

        backend = make_backend(args, checkpoint)
    except BaseException:
        conn.send({"error": traceback.format_exc()[-4000:]})
        return 1
    conn.send({"rank": rank, "init_start": t0, "init_end": time.time(), "pid": os.getpid(),
               "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")})
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the model process is gone
            return 0
        if msg is None:
            return 0
        try:
            t1, n, tokens = time.time(), 0, 0
            for i, o in backend.stream(_requests(conn), progress=False):
                conn.send(("out", i, o))
                n, tokens = n + 1, tokens + sum(len(t) for t in o.token_ids)
            t2 = time.time()
            conn.send(("end", {"start": t1, "end": t2, "engine_s": t2 - t1, "pid": os.getpid(),
                               "judged": n, "out_tokens": tokens}))
        except (EOFError, _Shutdown):
            return 0
        except BaseException:
            conn.send({"error": traceback.format_exc()[-4000:]})


class _Shutdown(Exception):
    """The model process asked this worker to exit in the middle of a call."""


def _requests(conn):
    """The ``(index, Prepared)`` items of one call, as the model process sends them."""
    while True:
        msg = conn.recv()
        if msg is None:
            raise _Shutdown
        if msg[0] == "done":
            return
        yield from msg[1]


if __name__ == "__main__":
    code = _worker(sys.argv[1], int(sys.argv[2]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip the engine's slow interpreter teardown
