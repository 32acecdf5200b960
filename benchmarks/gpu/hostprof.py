"""Host-side profiles of vLLM's decode loop: py-spy samples of the engine-core and front-end
processes while a batch decodes, reduced to the functions that take the time.

`record(pid, seconds, out)` runs py-spy (a wheel in wheels.lock; sampling, non-blocking, idle
threads included, so time spent waiting on the GPU shows as the wait it is). `collapse(path)` reads
py-spy's raw (collapsed-stack) output: one line per distinct stack, frames separated by ';', the
sample count last. Both the self time (the innermost frame) and the inclusive time (every function
on the stack, counted once per sample) are reported as fractions of all samples.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy() -> str | None:
    """The py-spy executable: on PATH, or the bin/ of a --target install on sys.path."""
    found = shutil.which("py-spy")
    if found:
        return found
    for entry in sys.path:
        cand = Path(entry or ".") / "bin" / "py-spy"
        if cand.is_file():
            return str(cand)
    return None


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen:
    """Start sampling `pid` for `seconds` into `out` (raw collapsed stacks); returns the process."""
    exe = py_spy()
    if exe is None:
        raise FileNotFoundError("py-spy is not installed (benchmarks/gpu/wheels.txt carries it)")
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
           "--format", "raw", "--nonblocking", "--idle", "--threads", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def frame_name(frame: str) -> str:
    """'func (/long/path/pkg/mod.py:123)' -> 'func (pkg/mod.py)': one name per function."""
    frame = frame.strip()
    if not frame.endswith(")") or " (" not in frame:
        return frame
    func, where = frame[:-1].rsplit(" (", 1)
    path = where.rsplit(":", 1)[0]
    return f"{func} ({'/'.join(Path(path).parts[-2:])})"


# innermost frames of a thread that is parked (waiting on a socket, a lock, a queue or a timer)
IDLE_LEAVES = ("poll (", "select (", "Condition.wait (", "Event.wait (", "sleep (", "_worker (futures/thread.py)",
               "recv_into (", "accept (", "Queue.get (", "wait (multiprocessing/connection.py)")


def parked(name: str) -> bool:
    return any(x in name for x in IDLE_LEAVES)


def _fractions(c: Counter, total: int, top: int) -> list:
    return [[name, round(k / total, 4)] for name, k in c.most_common(top)] if total else []


def collapse(path: Path, top: int = 30, per_thread_top: int = 15) -> dict:
    """Self and inclusive sample fractions per function of a py-spy raw file, overall and per
    thread (with --threads each stack starts with its thread; every thread is sampled each tick)."""
    self_c: Counter = Counter()
    incl_c: Counter = Counter()
    per: dict[str, list] = {}  # thread -> [samples, self Counter, inclusive Counter, parked samples]
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f]
        thread = "all"
        if frames and frames[0].startswith("thread ("):
            thread, frames = frames[0].split(": ", 1)[-1], frames[1:]
        if not frames:
            continue
        total += n
        names = [frame_name(f) for f in frames]
        t = per.setdefault(thread, [0, Counter(), Counter(), 0])
        t[0] += n
        t[3] += n if parked(names[-1]) else 0
        for sc, ic in ((self_c, incl_c), (t[1], t[2])):
            sc[names[-1]] += n
            for name in set(names):
                ic[name] += n
    # busiest first: the threads that are not parked most of the time
    threads = {name: {"samples": k, "busy": round(1 - idle / k, 4), "self": _fractions(sc, k, per_thread_top),
                      "inclusive": _fractions(ic, k, per_thread_top)}
               for name, (k, sc, ic, idle) in sorted(per.items(), key=lambda kv: kv[1][3] - kv[1][0])[:8]}
    return {"samples": total, "self": _fractions(self_c, total, top), "inclusive": _fractions(incl_c, total, top),
            "threads": threads}
