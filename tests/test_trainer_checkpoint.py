"""Pickle-free checkpoint pieces: nested state <-> safetensors + JSON, and the FSDP2 path
(full state gathered, saved, loaded back into fresh shards) on 2 gloo processes."""
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from trainer.checkpoint import load_tree, save_tree

REPO = Path(__file__).resolve().parents[1]


def test_nested_state_round_trips_without_pickle(tmp_path):
    w = torch.randn(4, 3)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))], lr=1e-3)
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    opt.step()
    state = {"tied": w, "tied_again": w, "view": w[1:], "empty": torch.zeros(0, dtype=torch.int64),
             "opt": opt.state_dict(), "misc": {3: (1, -math.inf, None, "s", [True])}}
    save_tree(state, tmp_path / "s.safetensors", extra={"note": {"k": [1, 2]}})
    back, extra = load_tree(tmp_path / "s.safetensors")
    assert extra == {"note": {"k": [1, 2]}}
    assert torch.equal(back["tied"], w) and back["tied_again"] is back["tied"] and torch.equal(back["view"], w[1:])
    assert back["empty"].dtype == torch.int64 and back["misc"] == {3: (1, -math.inf, None, "s", [True])}
    sd = opt.state_dict()
    assert back["opt"]["param_groups"] == [dict(g, betas=tuple(g["betas"])) for g in sd["param_groups"]]
    for k, v in sd["state"].items():
        assert set(back["opt"]["state"][k]) == set(v) and all(torch.equal(back["opt"]["state"][k][n], v[n]) for n in v)
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))], lr=1e-3)
    fresh.load_state_dict(back["opt"])  # torch accepts the restored structure


FSDP_SCRIPT = r'''
import sys, types, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from trainer import checkpoint as C

dist.init_process_group("gloo")
rank, out = dist.get_rank(), sys.argv[1]
acc = types.SimpleNamespace(distributed_type=types.SimpleNamespace(name="FSDP"), is_main_process=rank == 0,
                            process_index=rank, num_processes=2, unwrap_model=lambda m: m)

def build():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    for layer in m:
        fully_shard(layer)
    fully_shard(m)
    return m, torch.optim.AdamW(m.parameters(), lr=1e-2)

def step(m, o, x):
    m(x).sum().backward(); o.step(); o.zero_grad()

x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
m, o = build()
step(m, o, x); step(m, o, x)
msd, osd = C.gather_state(acc, m, types.SimpleNamespace(optimizer=o))
if rank == 0:
    assert set(osd["state"]) == {"0.weight", "0.bias", "1.weight", "1.bias"}, osd["state"].keys()
    C.save_tree(msd, f"{out}/model.safetensors"); C.save_tree(osd, f"{out}/optimizer.safetensors")
dist.barrier()
step(m, o, x)
ref = m(x).sum().item()
m2, o2 = build()
C.apply_state(acc, m2, types.SimpleNamespace(optimizer=o2), C.load_tree(f"{out}/model.safetensors")[0],
              C.load_tree(f"{out}/optimizer.safetensors")[0])
step(m2, o2, x)
got = m2(x).sum().item()
assert got == ref, (got, ref)
print(f"rank {rank} resumed exactly: {got}")
dist.destroy_process_group()
'''


def test_fsdp2_state_round_trip_on_two_gloo_processes(tmp_path):
    script = tmp_path / "fsdp_roundtrip.py"
    script.write_text(FSDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script), str(tmp_path)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert p.stdout.count("resumed exactly") == 2
