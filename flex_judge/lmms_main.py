"""`python -m flex_judge.lmms_main <lmms-eval args>`: lmms-eval's CLI with the flex task folder included,
made honest about failure and about its data.

- lmms-eval 0.7.3 takes one `--include_path` string on its command line but its TaskManager accepts
  a list, so the user's folder (if any) and the flex folder are both indexed.
- Pre-flight: every requested flex task's items are loaded BEFORE any model loads; a data problem
  ends the run with the project's own message (the setting, the file, the row), exit code 2.
- Exit code 1 when lmms-eval logged an evaluation error (its CLI logs and exits 0) or wrote no
  results for a requested task.
- Provenance: the results file gets a `flex_provenance` object (flex_tasks.provenance): per task the
  data source, item count, items hash and whether the run was the full protocol; the flex-judge
  version/commit and the real lmms-eval version.
- Details: the results file gets `flex_details`, per task the bookkeeping its aggregation produced
  beside the printed metrics (n_items, n_runs, parse_failures, bootstrap seed and iterations,
  breakdown; flex_tasks.lmms.take_details), so lmms-eval's table holds only numbers to compare.
- Start-up: when the include paths (the flex folder and the user's) define every requested task,
  lmms-eval's TaskManager indexes only them, not lmms-eval's ~2,000 built-in task entries (3-7 s on
  the GPU hosts; 2.9 s -> 0.04 s on a 2-core CPU); any other name, pattern or a listing gets the full index.
- Several processes: run under torchrun / accelerate launch, every rank runs this module; rank 0
  annotates the results and decides the exit code, other ranks fail only on their own errors.
- Resumable judging: the `flex` model's journal defaults to `<output_path>/flex_journal`
  (env FLEX_JUDGE_JOURNAL; model_args `journal=` wins).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

JOURNAL_ENV = "FLEX_JUDGE_JOURNAL"


def requested_flex_tasks(tasks_arg: str | None) -> list[str]:
    """The flex tasks a `--tasks` value asks for, groups expanded, in order, without repeats."""
    from flex_tasks.protocol import GROUPS, TASKS

    out: list[str] = []

    def add(name: str):
        if name in GROUPS:
            for member in GROUPS[name]:
                add(member)
        elif name in TASKS and name not in out:
            out.append(name)

    for name in (tasks_arg or "").split(","):
        add(name.strip())
    return out


def unknown_flex_tasks(tasks_arg: str | None) -> list[str]:
    """`--tasks` names that look like flex tasks (``flex_`` prefix) but are none, each with the
    closest real name: a typo fails here, before any model loads, not after lmms-eval's start-up."""
    import difflib

    from flex_tasks.protocol import GROUPS, TASKS

    known = sorted(set(TASKS) | set(GROUPS))
    out = []
    for name in (n.strip() for n in (tasks_arg or "").split(",")):
        if name.startswith("flex_") and name not in known and not any(c in name for c in "*?["):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            out.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out


def preflight(tasks: list[str], limit=None) -> dict:
    """Load every flex task's items (no model); returns task -> provenance. Raises DataError."""
    from flex_tasks.data import load_items
    from flex_tasks.protocol import get
    from flex_tasks.provenance import task_provenance

    out = {}
    for task in tasks:
        spec = get(task)
        source, items = load_items(spec)
        out[task] = task_provenance(spec, source, items, limit=limit)
    return out


def check_task_names(argv: list[str]) -> int:
    """2 (with a did-you-mean) when `--tasks` names a flex task that does not exist, else 0. Skipped
    with the user's own `--include_path`, whose tasks may carry any name."""
    if cli_option(argv, "--include_path") is not None:
        return 0
    unknown = unknown_flex_tasks(cli_option(argv, "--tasks"))
    if unknown:
        print(f"flex-judge eval: unknown flex task(s): {', '.join(unknown)}; `flex-judge eval --tasks list` "
              "lists them", file=sys.stderr)
        return 2
    return 0


def preflight_or_exit(argv: list[str]) -> int:
    """The pre-flight of an lmms-eval command line, outside lmms-eval: 2 (with the message) when a
    requested flex task's data cannot be loaded, else 0."""
    from flex_tasks.data import DataError

    rc = check_task_names(argv)
    if rc:
        return rc
    try:
        limit = cli_option(argv, "--limit")
        preflight(requested_flex_tasks(cli_option(argv, "--tasks")), limit=float(limit) if limit else None)
    except (DataError, KeyError, ValueError) as e:
        print(f"flex-judge eval: data pre-flight failed, no model was loaded:\n  {e}", file=sys.stderr)
        return 2
    return 0


def covered(task_manager, requested: list[str], listing: bool) -> bool:
    """Does this index know every requested name (so lmms-eval's built-in tasks need no index)?"""
    return not listing and bool(requested) and all(t in task_manager.all_tasks for t in requested)


def task_manager_factory(task_manager_cls, requested: list[str], listing: bool):
    """lmms-eval's TaskManager, built from the include paths alone when they define every requested
    task; otherwise (or for a listing) the full index, built-in tasks included."""

    def make(*args, **kwargs):
        if kwargs.get("include_defaults", True) and not listing and requested:
            reduced = task_manager_cls(*args, **dict(kwargs, include_defaults=False))
            if covered(reduced, requested, listing):
                return reduced
        return task_manager_cls(*args, **kwargs)

    return make


def missing_tasks(requested: list[str], results: dict | None) -> list[str]:
    if not results:
        return list(requested)
    have = set(results.get("results") or {}) | set(results.get("groups") or {})
    return [t for t in requested if t not in have]


def _results_files(output_path: str | None, since: float) -> list[Path]:
    if not output_path:
        return []
    root = Path(output_path)
    return sorted(p for p in root.glob("**/*_results.json") if p.stat().st_mtime >= since)


def _plain(value):
    """JSON fallback for numpy scalars (and anything else: its text)."""
    return value.item() if hasattr(value, "item") else str(value)


def annotate_results(files: list[Path], provenance: dict, details: dict) -> None:
    """Add ``flex_provenance`` and ``flex_details`` (each for the tasks the file has results for)
    to lmms-eval results files, everything lmms-eval wrote kept as written; atomic per file."""
    from flex_tasks.provenance import package_provenance

    for f in files:
        data = json.loads(f.read_text())
        have = data.get("results") or {}
        data["flex_provenance"] = {"package": package_provenance(),
                                   "tasks": {t: p for t, p in provenance.items() if t in have}}
        mine = {t: d for t, d in details.items() if t in have}
        if mine:  # another process of a multi-process run aggregated nothing: leave what rank 0 wrote
            data["flex_details"] = mine
        tmp = f.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, default=_plain))
        os.replace(tmp, f)


def cli_option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` / ``--name=VALUE`` in an lmms-eval command line (last wins)."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a[len(name) + 1:]
    return value


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds: engine workers are closed on the way out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--model" not in argv and not any(a.startswith("--model=") for a in argv):
        argv += ["--model", "flex"]
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return check_task_names(argv) or _evaluate(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _evaluate(argv: list[str]) -> int:
    import lmms_eval.__main__ as lmms_main
    from loguru import logger

    from flex_judge.cli import tasks_path
    from flex_tasks.data import DataError
    from flex_tasks.lmms import take_details

    sys.argv = ["lmms-eval", *argv]
    _, args = lmms_main.parse_eval_args()
    user = args.include_path
    args.include_path = [p for p in (user, str(tasks_path())) if p]
    listing = (args.tasks or "").startswith("list")

    flex_tasks = requested_flex_tasks(args.tasks)
    try:
        provenance = preflight(flex_tasks, limit=args.limit)
    except (DataError, KeyError, ValueError) as e:
        print(f"flex-judge eval: data pre-flight failed, no model was loaded:\n  {e}", file=sys.stderr)
        return 2
    if args.model == "flex" and args.output_path and JOURNAL_ENV not in os.environ:
        os.environ[JOURNAL_ENV] = str(Path(args.output_path) / "flex_journal")

    errors: list[str] = []
    outcomes: list = []
    annotated: set[Path] = set()
    original = lmms_main.cli_evaluate_single

    def evaluate_single(a):
        # cli_evaluate resets loguru's handlers before this runs, so the sink is added here
        sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
        take_details()  # this evaluation's aggregations only
        started = time.time() - 1  # file times have 1 s resolution on some file systems
        try:
            out = original(a)
        except BaseException as e:
            errors.append(f"{type(e).__name__}: {e}")
            raise
        finally:
            logger.remove(sink)
        outcomes.append(out[0] if isinstance(out, tuple) else out)
        if rank != 0:  # lmms-eval gathers to rank 0, which aggregates and writes the results
            return out
        files = [f for f in _results_files(getattr(a, "output_path", None), started) if f not in annotated]
        annotate_results(files, provenance, take_details())
        annotated.update(files)
        return out

    requested = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    rank = int(os.environ.get("RANK", "0"))  # a multi-process launch (torchrun / accelerate launch)
    task_manager = lmms_main.TaskManager
    lmms_main.cli_evaluate_single = evaluate_single
    lmms_main.TaskManager = task_manager_factory(task_manager, requested, listing)
    try:
        lmms_main.cli_evaluate(args)
    finally:
        lmms_main.cli_evaluate_single = original
        lmms_main.TaskManager = task_manager
    if listing:
        return 0
    missing = missing_tasks(requested, outcomes[-1] if outcomes else None) if rank == 0 else []
    if errors or missing:
        print("flex-judge eval: FAILED", file=sys.stderr)
        for e in errors[:10]:
            print(f"  lmms-eval error: {e.splitlines()[0] if e else e}", file=sys.stderr)
        if missing:
            print(f"  no results for requested task(s): {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
