"""`flex-judge`: one entry point that forwards to the owning package of each job.

Each sub-command's logic lives (and is tested) in its package; this file only routes argv.
"""
from __future__ import annotations

import argparse
import functools
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
    if argv in (["-h"], ["--help"]):
        print("usage: flex-judge tasks-path\n\nPrint the folder holding the flex task YAMLs, for "
              "`lmms-eval --include_path \"$(flex-judge tasks-path)\"`. No options.")
        return 0
    if argv:
        print(f"flex-judge tasks-path: takes no arguments, got {argv}", file=sys.stderr)
        return 2
    print(tasks_path())
    return 0


# Linux: prctl(2) option that has the kernel signal a process when its parent dies
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int):
    """preexec_fn of the child: SIGTERM it when `parent` dies (also by SIGKILL), then check that
    the parent did not die before the call (the child would then already be an orphan).

    Why PR_SET_PDEATHSIG and not only a process group: once the user's `flex-judge eval` is
    SIGKILLed nothing in it runs, so it cannot kill its child; only the kernel can act then, and
    PDEATHSIG is the kernel's hook for exactly this. A process group reaches the child only when the
    signal is sent to the group (`kill -- -PGID`), not when one pid is killed; a child polling
    getppid() would need a thread and lags by its period. SIGTERM, not SIGKILL, so the child
    unwinds: lmms_main turns SIGTERM into SystemExit (engines closed), torchrun stops its ranks."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        os._exit(125)
    if os.getppid() != parent:
        os._exit(125)


def run_child(cmd: list[str], env: dict | None = None) -> int:
    """Run `cmd` and wait for it to end; the child is never left running after its parent died.
    Returns its exit code (128 + signal when killed).

    - The child dies with this process (PR_SET_PDEATHSIG, see _die_with_parent), also after a SIGKILL.
    - It gets its own process group: a terminal's Ctrl-C reaches only this process, which forwards
      SIGINT once (one signal, one quiet line from the child; before, the child and its engine
      processes each got it from the terminal too and printed a traceback each).
    - SIGINT / SIGTERM sent to this process are forwarded; the env is passed explicitly."""
    child = subprocess.Popen(cmd, env=dict(os.environ if env is None else env), process_group=0,
                             preexec_fn=functools.partial(_die_with_parent, os.getpid()))

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:  # a handler installed elsewhere raised: keep waiting for the child
                continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 128 - rc if rc < 0 else rc


def run_lmms_eval(argv: list[str]) -> int:
    """Run lmms-eval in a fresh interpreter (flex_judge.lmms_main drives lmms-eval's Python API
    there; a run holds torch / engine state that must not outlive it). Exit code: 0 ok, 1
    evaluation error or a requested task without results, 2 a setting at fault (pre-flight),
    130 interrupted.

    `--num_processes N` (N > 1) is a shortcut for torchrun on this host (`torchrun --standalone
    --nproc-per-node N -m flex_judge.lmms_main ...`): N ranks, one engine each on its own GPU group
    (docs/scaling.md; several hosts: run torchrun yourself). The pre-flight runs here first, so
    a data problem still exits 2 (torchrun reports any failed rank as 1)."""
    from flex_judge.lmms_main import cli_option, preflight_or_exit

    if "-h" in argv or "--help" in argv:
        from flex_judge.lmms_main import main as lmms_main

        return lmms_main(["--help"])
    n = cli_option(argv, "--num_processes")
    argv = drop_option(argv, "--num_processes")
    try:
        n_proc = 1 if n is None else int(n)
        if n_proc < 1:
            raise ValueError
    except ValueError:
        print(f"flex-judge eval: --num_processes {n!r}: expected a positive integer", file=sys.stderr)
        return 2
    if n_proc == 1:
        return run_child([sys.executable, "-m", "flex_judge.lmms_main", *argv])
    rc = preflight_or_exit(argv)
    if rc:
        return rc
    return run_child([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_proc}",
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
    """`flex-judge [--verbose] COMMAND ...`. Errors are one line naming the setting at fault
    (exit 2 for a setting or input, 1 otherwise, 130 on Ctrl-C); `--verbose` shows the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="flex-judge",
        description="Flex-Judge for lmms-eval: evaluate, train and compare multimodal LLM judges.",
        epilog="`flex-judge COMMAND --help` lists a command's options with their defaults.",
    )
    parser.add_argument("--verbose", action="store_true", help="full tracebacks instead of one-line errors (default: off)")
    parser.add_argument("command", choices=sorted(COMMANDS), help="; ".join(f"{k}: {v[1]}" for k, v in COMMANDS.items()))
    verbose = False
    while argv and argv[0] == "--verbose":
        verbose, argv = True, argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    rest = argv[1:]
    if verbose and args.command == "eval":
        rest = [*rest, "--verbose"]  # the eval child prints its own errors
    from flex_models.errors import FlexJudgeError

    try:
        rc = _resolve(COMMANDS[args.command][0])(rest)
    except KeyboardInterrupt:
        print(f"flex-judge {args.command}: interrupted", file=sys.stderr)
        return 130
    except FlexJudgeError as e:  # deliberate: the class says whose fault (flex_models/errors.py)
        return _error(args.command, e, verbose, e.exit_code)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
        return _error(args.command, e, verbose, 2)
    except Exception as e:  # noqa: BLE001 - the CLI edge: one line, the traceback with --verbose
        return _error(args.command, e, verbose, 1)
    return int(rc or 0)


def _error(command: str, e: BaseException, verbose: bool, rc: int) -> int:
    if verbose:
        import traceback

        traceback.print_exc()
    text = str(e).strip().splitlines()
    hint = "" if verbose else " (flex-judge --verbose for the traceback)"
    print(f"flex-judge {command}: {type(e).__name__}: {text[0] if text else ''}{hint}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
