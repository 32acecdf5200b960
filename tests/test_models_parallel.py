"""Data parallel: GPU groups, and the real worker pool on CPU (two vLLM CPU engines): order,
streaming, reuse, and a call that fails part-way (the multi-GPU run itself needs GPUs)."""
import pytest

from flex_models.parallel import _gpu_groups


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
    assert [w["requests"] for w in calls[0]["workers"]] == [3, 2]  # request k -> worker k % 2
    assert [w["judged"] for w in calls[0]["workers"]] == [3, 2]
    # streaming: each judgment comes back on its own, in the order the engines finish them
    streamed = dict(dp.pool.stream(iter(enumerate(prepared)), total=5, progress=False))
    assert sorted(streamed) == list(range(5))
    assert [streamed[i].token_ids for i in range(5)] == [o.token_ids for o in merged]

    # a request that fails to decode part-way: its error, not a hang; the pool is closed after it
    from flex_models.media import MediaError
    from flex_models.parallel import WorkerError

    def failing():
        yield 0, prepared[0]
        yield 1, prepared[1]
        raise MediaError("doc 2: cannot read image broken.png")

    with pytest.raises(MediaError, match="broken.png"):
        list(dp.pool.stream(failing(), progress=False))
    assert dp.pool._closed and all(p.poll() is not None for p in dp.pool.procs)  # stopped, not left running
    with pytest.raises(WorkerError, match="closed"):
        dp.generate_prepared(prepared[:1], progress=False)
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


@pytest.mark.e2e
def test_early_engine_is_adopted_only_with_the_same_model_args(tiny_vl):
    """`flex-judge eval` starts the engine worker before lmms-eval's imports; the model adopts it
    when built with the same model_args (the harness's batch size aside) and judges exactly as an
    in-process engine does; a model with other settings closes it and builds its own."""
    import numpy as np
    from PIL import Image

    from flex_models.args import parse_args
    from flex_models.family import load_checkpoint
    from flex_models.model import FlexJudge
    from flex_models.parallel import start_early

    common = dict(backend="vllm", dtype="float32", max_new_tokens=8)
    args = parse_args(dict(common, pretrained=str(tiny_vl)))
    first = start_early(args, load_checkpoint(str(tiny_vl)))
    other = FlexJudge(pretrained=str(tiny_vl), max_num_seqs=4, **common)
    assert other.pool is None and other.backend is not None
    assert first._closed and all(p.poll() is not None for p in first.procs)

    pool = start_early(args, load_checkpoint(str(tiny_vl)))
    same = FlexJudge(pretrained=str(tiny_vl), batch_size=4, **common)
    assert same.pool is pool and same.backend is None
    im = Image.fromarray((np.random.RandomState(0).rand(56, 56, 3) * 255).astype("uint8"))
    msgs = [{"role": "user", "content": [{"type": "image", "url": im}, {"type": "text", "text": "q"}]}]
    greedy = {"do_sample": False}
    ours = same.generate_prepared([same.prepare(msgs, where="doc 0", gen_kwargs=greedy)], progress=False)
    theirs = other.generate_prepared([other.prepare(msgs, where="doc 0", gen_kwargs=greedy)], progress=False)
    assert ours[0].token_ids == theirs[0].token_ids and ours[0].texts == theirs[0].texts
    pool.close()
