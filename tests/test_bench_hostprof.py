"""The GPU benchmark's reduction of py-spy samples (benchmarks/gpu/hostprof.py) on a real py-spy
raw file layout: stacks per thread, self and inclusive fractions, parked threads ranked last."""
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks" / "gpu"))
import hostprof  # noqa: E402

RAW = """\
thread (11): MainThread;run_busy_loop (/x/vllm/v1/engine/core.py:900);step (/x/vllm/v1/engine/core.py:400);schedule (/x/vllm/v1/core/sched/scheduler.py:300) 30
thread (11): MainThread;run_busy_loop (/x/vllm/v1/engine/core.py:900);step (/x/vllm/v1/engine/core.py:410);execute_model (/x/vllm/v1/executor/abstract.py:80) 50
thread (11): MainThread;run_busy_loop (/x/vllm/v1/engine/core.py:901);step (/x/vllm/v1/engine/core.py:420);update_from_output (/x/vllm/v1/core/sched/scheduler.py:700) 20
thread (12): Thread-1 (process_input_sockets);process_input_sockets (/x/vllm/v1/engine/core.py:1000);poll (/x/zmq/sugar/poll.py:100) 100
"""


def test_collapse_fractions_and_thread_ranking(tmp_path):
    f = tmp_path / "raw.txt"
    f.write_text(RAW + "not a sample line\n")
    s = hostprof.collapse(f)
    assert s["samples"] == 200
    self_ = dict(map(tuple, s["self"]))
    assert self_["execute_model (executor/abstract.py)"] == 0.25 and self_["poll (sugar/poll.py)"] == 0.5
    incl = dict(map(tuple, s["inclusive"]))
    # two lines of step() in one stack count once per sample; 100 of 200 samples are in the busy loop
    assert incl["step (engine/core.py)"] == 0.5 and incl["run_busy_loop (engine/core.py)"] == 0.5
    names = list(s["threads"])
    assert names == ["MainThread", "Thread-1 (process_input_sockets)"]  # busiest first
    main, inputs = s["threads"]["MainThread"], s["threads"]["Thread-1 (process_input_sockets)"]
    assert main["busy"] == 1.0 and inputs["busy"] == 0.0
    assert dict(map(tuple, main["self"]))["schedule (sched/scheduler.py)"] == 0.3
