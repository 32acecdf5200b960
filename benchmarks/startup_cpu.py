#!/usr/bin/env python3
"""Interpreter and CLI start-up in the project venv (CPU), against a bare interpreter.

Each command runs `--reps` times (medians reported); `python -I -S -c pass` (no site, so no .pth
hooks) is the bare reference and every row's ratio is to it. `import torch` is what every Python
start paid while the CPU torchvision shim imported torch from its .pth hook (before 2026-12-03).

    python benchmarks/startup_cpu.py --reps 5 --out benchmarks/startup_cpu_results.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS = {
    "bare: python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
    "python -c pass (venv, .pth hooks)": [sys.executable, "-c", "pass"],
    "flex-judge --help": [str(BIN / "flex-judge"), "--help"],
    "flex-judge eval --help": [str(BIN / "flex-judge"), "eval", "--help"],
    "python -c 'import torch' (the old per-start cost)": [sys.executable, "-c", "import torch"],
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    rows = {}
    for name, cmd in COMMANDS.items():
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=300)
            times.append(time.perf_counter() - t0)
        rows[name] = {"median_s": round(statistics.median(times), 4), "all_s": [round(t, 4) for t in times]}
    bare = rows["bare: python -I -S -c pass"]["median_s"]
    for r in rows.values():
        r["over_bare"] = round(r["median_s"] / bare, 2)
    res = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
           "python": platform.python_version(), "reps": a.reps, "rows": rows}
    for name, r in rows.items():
        print(f"{name:55s} {r['median_s']:8.3f} s  {r['over_bare']:7.2f}x bare")
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
