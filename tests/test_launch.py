"""lmms-eval's own multi-process launch with `--model flex` (torchrun / accelerate launch, gloo, CPU):
N ranks give the samples and metrics of 1 rank, each rank journals its own share, a rank killed
mid-run is resumed by a run with another number of ranks without judging anything twice, and two
"hosts" (two torchrun invocations with node ranks 0 and 1 on loopback) give the same samples.

The task is the real `flex_vl_rewardbench` on its bundled fixtures (6 items x 2 seeded sampled runs,
random order per run): every request carries its run's seed, so its answer does not depend on which
rank judged it or with what.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_env import fixture_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
TASK = "flex_vl_rewardbench"
N_DOCS = 6 * 2  # fixture items x FLEX_JUDGE_RUNS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lmms_args(ckpt: Path, backend: str, out: Path, max_new_tokens: int = 8, extra: str = "") -> list[str]:
    from flex_judge.cli import tasks_path

    model_args = f"pretrained={ckpt},backend={backend},dtype=float32,max_new_tokens={max_new_tokens}," \
                 f"journal={out / 'journal'}{extra}"
    return ["-m", "lmms_eval", "--model", "flex", "--model_args", model_args, "--tasks", TASK,
            "--include_path", str(tasks_path()), "--output_path", str(out), "--log_samples"]


def torchrun(nproc: int, *rest: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *rest]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO, env=fixture_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def samples(out: Path) -> dict:
    files = sorted(out.rglob(f"*_samples_{TASK}.jsonl"))
    assert files, f"no samples under {out}"
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    got = {}
    for r in rows:
        resp = r.get("filtered_resps", r.get("resps"))
        while isinstance(resp, list):
            resp = resp[0]
        got[r["doc_id"]] = (resp, r["overall_acc"])
    return got


def metrics(out: Path) -> dict:
    files = sorted(out.rglob("*_results.json"))
    assert files, f"no results under {out}"
    return json.loads(files[-1].read_text())["results"][TASK]


def journal(out: Path) -> dict[str, list[str]]:
    """journal file name -> the keys in it, in order."""
    return {f.name: [json.loads(line)["key"] for line in f.read_text().splitlines() if line.strip()]
            for f in sorted((out / "journal").glob("judgments*.jsonl"))}


@pytest.fixture(scope="module")
def one_rank_hf(tiny_vl, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf1")
    run([sys.executable, *lmms_args(tiny_vl, "hf", out)])
    return out


@pytest.fixture(scope="module")
def two_ranks_hf(tiny_vl, tmp_path_factory):
    out = tmp_path_factory.mktemp("hf2")
    run(torchrun(2, *lmms_args(tiny_vl, "hf", out)))
    return out


def test_two_ranks_equal_one_rank_transformers(one_rank_hf, two_ranks_hf):
    one, two = samples(one_rank_hf), samples(two_ranks_hf)
    assert len(one) == N_DOCS and one == two
    assert metrics(one_rank_hf) == metrics(two_ranks_hf)


def test_each_rank_journals_a_disjoint_share(one_rank_hf, two_ranks_hf):
    files = journal(two_ranks_hf)
    assert sorted(files) == ["judgments.jsonl", "judgments.rank1.jsonl"]
    shares = [set(v) for v in files.values()]
    assert all(shares) and not shares[0] & shares[1]
    assert shares[0] | shares[1] == set(journal(one_rank_hf)["judgments.jsonl"])


def test_two_hosts_on_loopback_equal_one_rank(tiny_vl, one_rank_hf, tmp_path):
    """Two launcher invocations, node ranks 0 and 1, one process each, meeting on 127.0.0.1."""
    out = tmp_path / "hosts"
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node}", "--nproc-per-node=1",
         "--master-addr=127.0.0.1", f"--master-port={port}", *lmms_args(tiny_vl, "hf", out)],
        cwd=REPO, env=fixture_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:] + errs[1][-3000:]
    assert samples(out) == samples(one_rank_hf)
    assert sorted(journal(out)) == ["judgments.jsonl", "judgments.rank1.jsonl"]


def test_accelerate_launch(tiny_vl, one_rank_hf, tmp_path):
    out = tmp_path / "accel"
    run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes=2", "--num_machines=1",
         "--mixed_precision=no", "--dynamo_backend=no", "--main_process_port", str(_free_port()),
         *lmms_args(tiny_vl, "hf", out)])
    assert samples(out) == samples(one_rank_hf)


def _rank_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of the launched worker whose RANK is `rank` (read from /proc)."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            environ = (p / "environ").read_bytes().split(b"\0")
            stat = (p / "stat").read_text()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and int(stat.rsplit(")", 1)[1].split()[1]) == launcher_pid:
            return int(p.name)
    return None


def test_sigkill_of_one_rank_then_a_one_rank_rerun_judges_nothing_twice(tiny_vl, tmp_path):
    out = tmp_path / "killed"
    # longer outputs and one request per engine call: the kill lands while both ranks still judge
    args = lmms_args(tiny_vl, "hf", out, max_new_tokens=48, extra=",stream_window=1")
    launcher = subprocess.Popen(torchrun(2, *args), cwd=REPO, env=fixture_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and launcher.poll() is None and len(journal(out).get("judgments.rank1.jsonl", [])) < 1:
            time.sleep(0.05)
        victim = _rank_pid(launcher.pid, 1)
        assert victim is not None and launcher.poll() is None, "rank 1 was not found running"
        os.kill(victim, signal.SIGKILL)
        launcher.wait(timeout=120)  # torchrun tears the other rank down
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    before = journal(out)
    done_before = sum(len(v) for v in before.values())
    assert 1 <= done_before < N_DOCS, f"kill landed at {done_before} judgments: not mid-way"
    assert not list(out.rglob("*_results.json"))

    rerun = run([sys.executable, *args])
    after = journal(out)
    keys = [k for v in after.values() for k in v]
    assert len(keys) == len(set(keys)) == N_DOCS  # every request judged exactly once, over both runs
    for name, old in before.items():
        assert after[name][:len(old)] == old  # nothing already judged was rewritten
    assert f"{done_before} of {N_DOCS} requests already judged" in rerun.stderr + rerun.stdout


def test_flex_judge_eval_num_processes_with_vllm(tiny_vl, tmp_path):
    """`flex-judge eval --num_processes 2` (torchrun underneath) on vLLM's CPU engine: the samples
    of `flex-judge eval` on one process, provenance and details on rank 0's results, exit code 0."""
    outs = {}
    for n in (1, 2):
        out = tmp_path / f"vllm{n}"
        model_args = f"pretrained={tiny_vl},backend=vllm,dtype=float32,max_new_tokens=8"
        proc = subprocess.run(
            [sys.executable, "-m", "flex_judge.cli", "eval", "--num_processes", str(n), "--model_args", model_args,
             "--tasks", TASK, "--output_path", str(out), "--log_samples"],
            cwd=REPO, env=fixture_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        outs[n] = out
    assert samples(outs[1]) == samples(outs[2])
    res = json.loads(sorted(outs[2].rglob("*_results.json"))[-1].read_text())
    assert TASK in res["flex_provenance"]["tasks"] and TASK in res["flex_details"]
    assert sorted(f.name for f in (outs[2] / "flex_journal").glob("*.jsonl")) == ["judgments.jsonl",
                                                                                   "judgments.rank1.jsonl"]


def test_num_processes_preflight_still_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flex_judge.cli", "eval", "--num_processes", "2", "--model_args", "pretrained=x",
         "--tasks", TASK, "--output_path", str(tmp_path)],
        cwd=REPO, env=fixture_env(FLEX_JUDGE_DATA="", FLEX_VL_REWARDBENCH_PATH=str(tmp_path / "absent")),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "FLEX_VL_REWARDBENCH_PATH" in proc.stderr and "torch.distributed" not in proc.stderr
