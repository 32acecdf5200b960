"""Data-parallel shard/merge (the multi-GPU run itself needs GPUs and is not tested here)."""
import pytest

from flex_models.parallel import _gpu_groups, merge, shard


@pytest.mark.parametrize("n_items, n_workers", [(0, 2), (1, 4), (7, 3), (64, 8), (5, 1)])
def test_shard_then_merge_restores_order(n_items, n_workers):
    shards = shard(n_items, n_workers)
    assert len(shards) == n_workers
    assert sorted(i for s in shards for i in s) == list(range(n_items))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    results = [[f"out-{i}" for i in s] for s in shards]
    assert merge(shards, results, n_items) == [f"out-{i}" for i in range(n_items)]


def test_merge_rejects_wrong_lengths_duplicates_and_gaps():
    with pytest.raises(ValueError, match="returned 1 results"):
        merge([[0, 1]], [["a"]], 2)
    with pytest.raises(ValueError, match="request 0 appears in two shards"):
        merge([[0], [0]], [["a"], ["b"]], 1)
    with pytest.raises(ValueError, match=r"requests \[1\] were in no shard"):
        merge([[0]], [["a"]], 2)


def test_gpu_groups_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert _gpu_groups(2, 2) == ["4,5", "6,7"]
    assert _gpu_groups(4, 1) == ["4", "5", "6", "7"]
    with pytest.raises(ValueError, match="needs 8 GPUs"):
        _gpu_groups(4, 2)



@pytest.mark.e2e
def test_two_cpu_workers_match_one_engine(tiny_vl):
    """The real data-parallel path (2 persistent worker processes, one vLLM CPU engine each) on CPU:
    same outputs as one engine, and a second call is served by the same workers and engines."""
    import numpy as np
    from PIL import Image

    from flex_models.model import FlexJudge

    def msgs(s):
        im = Image.fromarray((np.random.RandomState(s).rand(56, 56, 3) * 255).astype("uint8"))
        return [{"role": "user", "content": [{"type": "image", "url": im}, {"type": "text", "text": f"q{s}"}]}]

    dp = FlexJudge(pretrained=str(tiny_vl), backend="vllm", dtype="float32", max_new_tokens=8, data_parallel_size=2)
    assert dp.backend is None  # no engine in the parent process
    prepared = [dp.prepare(msgs(s), where=f"doc {s}") for s in range(5)]
    merged = dp.generate_prepared(prepared, progress=False)
    again = dp.generate_prepared(prepared[:3], progress=False)
    assert [o.token_ids for o in again] == [o.token_ids for o in merged[:3]]
    calls = dp.pool.calls
    assert [c["requests"] for c in calls] == [5, 3]
    pids = [w["pid"] for w in dp.pool.ready]
    assert len(set(pids)) == 2 and [w["pid"] for w in calls[1]["workers"]] == pids  # built once, reused
    assert [w["requests"] for w in calls[0]["workers"]] == [3, 2]
    dp.pool.close()
    assert all(p.poll() is not None for p in dp.pool.procs)
    single = FlexJudge(pretrained=str(tiny_vl), backend="vllm", dtype="float32", max_new_tokens=8)
    assert [o.token_ids for o in merged] == [o.token_ids for o in single.generate_prepared(prepared, progress=False)]


@pytest.mark.e2e
def test_pool_names_the_worker_that_cannot_build_its_engine(tiny_vl, tmp_path):
    """A worker whose engine fails to build is reported by rank and GPUs with its traceback,
    instead of the model process waiting forever."""
    import shutil

    from flex_models.args import parse_args
    from flex_models.family import load_checkpoint
    from flex_models.parallel import WorkerError, start_pool

    ckpt = tmp_path / "no-weights"
    shutil.copytree(tiny_vl, ckpt)
    checkpoint = load_checkpoint(str(ckpt))
    for f in ckpt.glob("*.safetensors"):
        f.unlink()  # the config reads fine in the model process; the engines then find no weights
    args = parse_args({"pretrained": str(ckpt), "backend": "vllm", "dtype": "float32", "data_parallel_size": 2})
    pool = start_pool(args, checkpoint)
    try:
        with pytest.raises(WorkerError, match=r"data-parallel worker [01] \(GPUs \d\) failed while building its engine"):
            pool.wait_ready()
    finally:
        pool.close()
