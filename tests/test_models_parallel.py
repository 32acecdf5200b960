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

