"""`flex-judge`: one entry point that forwards to the owning package of each job.

Each sub-command's logic lives (and is tested) in its package; this file only routes argv.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

# name -> ("module:function" taking argv and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("flex_judge.cli:run_lmms_eval", "run lmms-eval with the flex tasks on the include path"),
    "tasks-path": ("flex_judge.cli:print_tasks_path", "print the folder to pass to lmms-eval --include_path"),
    "demo": ("flex_judge.demo:main", "train a tiny judge on bundled data, then evaluate it on the bundled tasks"),
    "make-tiny": ("flex_models.tiny:main", "build a random tiny Qwen2.5-VL / Qwen2.5-Omni checkpoint offline"),
    "train": ("trainer.train:main", "SFT a judge from text-only reasoning data (accelerate)"),
    "data": ("trainer.data_pipeline:main", "teacher trace generation / filtering -> train.jsonl"),
    "lm-eval": ("flex_models.lm_eval_cli:main", "run lm-eval (text-only judging) with the flex model registered"),
    "leaderboard": ("flex_judge.analysis.leaderboard:main", "collect lmms-eval runs of flex tasks into the paper's tables"),
    "compare": ("flex_judge.analysis.compare:main", "per-item comparison of judges that ran the same flex tasks"),
    "report": ("flex_judge.analysis.report:main", "one self-contained HTML page: tables with CIs, compare plots, an item browser with media"),
    "judge": ("flex_judge.judging.file:main", "judge your own JSONL file (pair / score / batch); `judge serve` starts the lmms-eval judge server"),
}


def tasks_path() -> Path:
    """The installed folder holding the flex task YAMLs."""
    import yaml_tasks

    return Path(yaml_tasks.__file__).resolve().parent


def print_tasks_path(argv: list[str]) -> int:
    if argv:
        print(f"tasks-path takes no arguments, got {argv}", file=sys.stderr)
        return 2
    print(tasks_path())
    return 0


def run_child(cmd: list[str]) -> int:
    """Run `cmd`, forwarding SIGINT/SIGTERM to it and waiting for it to end: the child is never
    left generating after its parent died. Returns its exit code (128 + signal when killed)."""
    child = subprocess.Popen(cmd, env=os.environ.copy())

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:  # a second Ctrl-C while waiting: keep waiting for the child
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 128 - rc if rc < 0 else rc


def run_lmms_eval(argv: list[str]) -> int:
    """Run lmms-eval in a fresh interpreter (its CLI calls sys.exit and holds global state).
    Exit code: 0 ok, 1 evaluation error or a requested task without results, 2 data pre-flight
    failed (flex_judge.lmms_main).

    `--num_processes N` (N > 1) is a shortcut for torchrun on this host (`torchrun --standalone
    --nproc-per-node N -m flex_judge.lmms_main ...`): N ranks, one engine each on its own GPU group
    (docs/scaling.md; several hosts: run torchrun yourself). The data pre-flight runs here first, so
    a data problem still exits 2 (torchrun reports any failed rank as 1)."""
    from flex_judge.lmms_main import cli_option, preflight_or_exit

    n = cli_option(argv, "--num_processes")
    argv = drop_option(argv, "--num_processes")
    if n is None or int(n) <= 1:
        return run_child([sys.executable, "-m", "flex_judge.lmms_main", *argv])
    rc = preflight_or_exit(argv)
    if rc:
        return rc
    return run_child([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(n)}",
                      "-m", "flex_judge.lmms_main", *argv])


def drop_option(argv: list[str], name: str) -> list[str]:
    """`argv` without ``--name VALUE`` / ``--name=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def _resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="flex-judge",
        description="Flex-Judge for lmms-eval: evaluate, train and compare multimodal LLM judges.",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    from flex_models.extras import MissingExtra

    try:
        rc = _resolve(COMMANDS[args.command][0])(argv[1:])
    except MissingExtra as e:
        print(f"flex-judge {args.command}: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
