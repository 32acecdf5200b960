"""CPU smoke of benchmarks/suite_gpu.py: the suite-shaped workload end to end on tiny checkpoints.

Two tasks of each kind the suite has (several images + order swaps; video; audio pairs), 2 items each,
4 new tokens, the vLLM CPU engine: every pass (raw and flex twice in ABBA order, run-major, the
upstream scripts, the warm start-up probes) runs and the counts it reports are the workload's own. The times are meaningless on a CPU; the test checks the bookkeeping.
"""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (importlib.util.find_spec("vllm") and importlib.util.find_spec("lmms_eval")),
                       reason="needs vllm (CPU build) and lmms-eval"),
]

TASKS = "flex_vl_rewardbench,flex_mj_bench_alignment,flex_genai_bench_video,flex_voxsim"
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    work = tmp_path_factory.mktemp("suite")
    cmd = [sys.executable, str(REPO / "benchmarks" / "suite_gpu.py"), "--mode", "cpu", "--scale", "0.001",
           "--tasks", TASKS, "--workdir", str(work), "--out-json", str(work / "r.json"), "--out-md", str(work / "r.md"),
           "--steplog", "on", "--upstream-run", "--pairs", "2", "--warm-startup", "--family-scale", "omni=0.002"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert (work / "r.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, json.loads((work / "r.json").read_text()), (work / "r.md").read_text()


def test_every_pass_ran(suite):
    proc, out, md = suite
    fams = out["summary"]["families"]
    assert set(fams) == {"vl", "omni"} and all(f["ok"] for f in fams.values()), fams
    assert proc.returncode == 0
    for f in fams.values():
        assert f["raw_s"] > 0 and f["flex_s"] > 0 and f["runmajor_s"] > 0
        assert 0 < f["raw_init_s"] < f["startup_s"]
    assert "| flex_voxsim |" in md


def test_abba_pairs_and_warm_startup(suite):
    """--pairs 2: raw and flex twice per engine in ABBA order, the first pass alternating between the
    families; flex/raw is the ratio of the sums. --warm-startup: each family's start-up again, flex's
    and a bare vLLM script's, after its passes."""
    _, out, md = suite
    fams = out["summary"]["families"]
    assert list(fams["vl"]["pass_order_s"]) == ["raw", "flex", "flex_2", "raw_2"]
    assert list(fams["omni"]["pass_order_s"]) == ["flex", "raw", "raw_2", "flex_2"]
    for fam, f in fams.items():
        w = {k: v["wall_s"] for k, v in out["parts"][fam]["passes"].items()}  # unrounded
        assert f["flex_over_raw"] == pytest.approx((w["raw"] + w["raw_2"]) / (w["flex"] + w["flex_2"]), abs=1e-4)
        assert f["flex_over_raw_by_pair"] == [pytest.approx(w["raw"] / w["flex"], abs=1e-4),
                                              pytest.approx(w["raw_2"] / w["flex_2"], abs=1e-4)]
        ws = f["warm_startup"]
        assert 0 < ws["flex_llm_init_s"] < ws["flex_startup_s"], ws
        assert 0 < ws["script_import_vllm_s"] < ws["script_launch_to_ready_s"], ws
        assert ws["flex_minus_script_s"] == pytest.approx(ws["flex_startup_s"] - ws["script_launch_to_ready_s"], abs=0.02)
    # --family-scale: the audio family at its own scale, more VoxSim items than the VL scale gives
    rows = {r["task"]: r for r in out["summary"]["tasks"]}
    assert rows["flex_voxsim"]["items"] == round(rows["flex_voxsim"]["items_full"] * 0.002)
    assert "flex - script" in md


def test_pass_order():
    import suite_gpu

    assert suite_gpu.pass_order(["raw", "flex", "runmajor"], 1, True) == ["raw", "flex", "runmajor"]
    assert suite_gpu.pass_order(["raw", "flex"], 3, False) == ["flex", "raw", "raw_2", "flex_2", "flex_3", "raw_3"]
    assert suite_gpu.pass_order(["flex"], 2, True) == ["flex", "flex_2"]


def test_requests_are_the_protocol_runs(suite):
    from flex_tasks.protocol import TASKS as SPECS

    _, out, _ = suite
    rows = {r["task"]: r for r in out["summary"]["tasks"]}
    assert set(rows) == set(TASKS.split(","))
    for task, r in rows.items():
        spec = SPECS[task]
        runs = spec.runs if spec.multi_run else 1
        assert r["runs"] == runs and r["requests"] == r["items"] * runs, r
        assert r["mean_new_tokens"] == 4  # the CPU cap; random weights never stop early at 4 tokens
    # media per request: VL-RewardBench 1 image, MJ-Bench 2, GenAI-Bench video 2 clips, VoxSim 2 audios
    per_request = {t: rows[t]["media_items_per_item"] / rows[t]["runs"] for t in rows}
    assert per_request == {"flex_vl_rewardbench": 1, "flex_mj_bench_alignment": 2, "flex_genai_bench_video": 2,
                           "flex_voxsim": 2}


def test_runs_of_an_item_share_the_prefix(suite):
    """Submitted together, the 5 runs of a VL-RewardBench item need the image encoder once (the image
    sits in the shared prefix); one generate per run with the cache emptied between needs it 5 times."""
    _, out, _ = suite
    rows = {r["task"]: r for r in out["summary"]["tasks"]}
    vlrb = rows["flex_vl_rewardbench"]
    assert vlrb["encoder_items_per_item"] == 1 and vlrb["runmajor_encoder_items_per_item"] == 5
    assert vlrb["prefix_hit_rate"] > vlrb["runmajor_prefix_hit_rate"]
    # MJ-Bench's two runs show the images in swapped order: the prefix differs from the first image on
    assert rows["flex_mj_bench_alignment"]["encoder_items_per_item"] == 4
    # the flex model submits in that same order: its prefix-cache hits equal the raw pass's, token for token
    for f in out["summary"]["families"].values():
        assert f["prefix_cache_hit_rate"] == f["raw_prefix_cache_hit_rate"] > 0


def test_upstream_scripts_ran_the_same_requests(suite):
    """--upstream-run: one fresh engine process per benchmark script, one generate per task and run,
    fed the raw pass's own requests: every task's requests, and 4 new tokens each (the CPU cap)."""
    _, out, md = suite
    rows = {r["task"]: r for r in out["summary"]["tasks"]}
    m = out["summary"]["upstream_way"]["measured"]
    assert m["failed"] == [] and set(m["per_script"]) == {"vl_rewardbench", "mj_bench", "genai_bench", "voxsim"}
    import suite_gpu

    for name, r in m["per_script"].items():
        mine = [t for t in rows.values() if suite_gpu.script_of(t["task"]) == name]
        assert r["requests"] == sum(t["requests"] for t in mine) and r["new_tokens"] == 4 * r["requests"]
        assert r["calls"] == sum(t["runs"] for t in mine)
        assert 0 < r["import_vllm_s"] < r["launch_to_ready_s"] < r["launch_to_done_s"] <= r["process_s"]
    assert m["launch_to_done_s"] == pytest.approx(sum(r["launch_to_done_s"] for r in m["per_script"].values()), abs=0.2)
    assert "run (4 processes)" in md


def test_share_order_keeps_items_together():
    from flex_models.requests import share_order

    keys = ["a", "b", "a", "c", "b", "a"]
    assert share_order(keys, list(range(6)), block=2) == [0, 1, 2, 5, 4, 3]
    assert share_order(keys, list(range(6)), block=1) == [0, 2, 5, 1, 4, 3]
    assert sorted(share_order(keys, [5, 3, 1], block=8)) == [1, 3, 5]


def test_workload_counts_and_roofline():
    import suite_gpu

    vl = suite_gpu.workload("vl", 1.0)
    assert sum(t["items"] * t["runs"] for t in vl) == 86343  # every VL request of flex_all at full size
    from flex_tasks import benchmarks

    paper = {spec.task for b in benchmarks.registered() if b.in_paper for spec in b.tasks(benchmarks._protocols())}
    assert {t["task"] for t in vl + suite_gpu.workload("omni", 1.0)} == paper  # every task of flex_all
    shape = {"decode_weight_bytes": 100, "kv_bytes_per_token": 1}
    # 2 requests, 3 new tokens each, batch 8: 3 steps x 100 B + KV (3x10 + 3) x 2 = 366 B at 1 B/s
    assert suite_gpu.roofline_s([(10, 3), (10, 3)], shape, 1.0, 8) == 366
    assert suite_gpu.encoder_needs([1, 9, 9, 2, 9, 3], cached=3, ph={9}) == (2, 1)


def test_step_log_accounts_for_every_generated_token(suite):
    """benchmarks/gpu/steplog.py, in the engine that ran the passes: each request's first token comes
    from its prefill step, every later one from a one-token decode step (a prompt found wholly in the
    prefix cache recomputes one token, which the log counts as a decode step), so the decode tokens
    scheduled lie between generated - requests and generated; the phases' wall adds up to the pass."""
    _, out, _ = suite
    for fam, part in out["parts"].items():
        for name, p in part["passes"].items():
            sp = p["step_profile"]
            assert sp["steps"] > 0, (fam, name, sp)
            decode = sum(ph["decode_tokens"] for ph in sp["phases"].values())
            per = p.get("per_task")
            new = sum(d["new_tokens"] for d in per.values()) if per else p["new_tokens"]
            reqs = sum(d["requests"] for d in per.values()) if per else p["requests"]
            assert new - reqs <= decode <= new, (fam, name, decode, new, reqs)
            assert sum(ph["prefill_tokens"] for ph in sp["phases"].values()) > 0
            assert abs(sum(ph["wall_s"] for ph in sp["phases"].values()) - sp["wall_s"]) < 0.01
            assert sp["wall_s"] <= p["wall_s"] + 0.05  # steps inside the pass's own window


def test_step_bounds_by_hand():
    import steplog

    shape = {"decode_weight_bytes": 100, "kv_bytes_per_token": 2}
    steps = [{"ts": 0.0, "tu": 1.0, "reqs": 2, "tok": 10, "prefill": 8, "ctx": 20, "enc": 1, "preempt": 0, "kv": 0.1,
              "waiting": 0},
             {"ts": 1.0, "tu": 3.0, "reqs": 2, "tok": 2, "prefill": 0, "ctx": 22, "enc": 0, "preempt": 0, "kv": 0.1,
              "waiting": 0}]
    r = steplog.reduce(steps, shape, bw=10.0, flops=40.0, max_seqs=2, t_start=0.0)
    # step 1: bandwidth (100 + 40) / 10 = 14; roofline max(10, 2 * 50 * 10 / 40 = 25) + 4 = 29
    # step 2: bandwidth (100 + 44) / 10 = 14.4; roofline max(10, 2 * 50 * 2 / 40 = 5) + 4.4 = 14.4
    assert r["phases"]["with_prefill"]["bw_bound_s"] == 14 and r["phases"]["with_prefill"]["roofline_s"] == 29
    assert r["phases"]["decode_full"]["wall_s"] == 2 and r["phases"]["decode_full"]["roofline_s"] == 14.4
    assert r["roofline_over_wall"] == round((29 + 14.4) / 3, 4) and r["encoder_inputs"] == 1
