"""`python -m flex_judge.lmms_main <lmms-eval args>` (what `flex-judge eval` runs): an lmms-eval run
driven through lmms-eval's public Python API, made honest about failure and about its data.

lmms-eval's command-line parser reads the arguments (so every lmms-eval option means what it means
there); then this module does what lmms-eval's CLI does, with its public pieces -- `TaskManager`,
`evaluator.simple_evaluate`, `EvaluationTracker.save_results_aggregated / save_results_samples` and
`utils.make_table` -- and adds flex's parts in between. Nothing of lmms-eval is patched, no file is
found after the fact and no state outlives a call: a plain `lmms-eval --model flex ...` run and this
module give the same samples and the same metrics (tests/test_eval_api.py).

What it adds:
- Include paths: the user's `--include_path` (if any) and the flex task folder, both indexed
  (lmms-eval's CLI takes one string; its TaskManager a list). When they define every requested
  task, only they are indexed, not lmms-eval's ~2,000 built-in entries (2.9 s -> 0.04 s on 2 cores).
- Pre-flight, exit code 2, before any model loads: a task name that exists nowhere (with a
  did-you-mean), a flex task whose data cannot be loaded (the setting, the file, the row), a
  model_args value holding a real newline (lmms-eval's parser strips it: write ``\\n``), and
  lmms-eval's own argument checks.
- Exit code 1 when lmms-eval logged an evaluation error or raised, or gave no results for a
  requested task (its CLI exits 0 then). One line per error; the traceback only with `--verbose`.
- Provenance and details, put into the results dict before lmms-eval's tracker writes it:
  `flex_provenance` (flex_tasks.provenance: per task the data source, item count, items hash, full
  protocol or not; flex-judge's version/commit, lmms-eval's version) and `flex_details` (per task the
  bookkeeping of its report: counts, parse failures, bootstrap seed and iterations, breakdown),
  computed from the records lmms-eval hands back in the per-document samples.
- Resumable judging: with `--model flex` and `--output_path OUT`, `journal=OUT/flex_journal` is added
  to model_args unless model_args name a journal or env FLEX_JUDGE_JOURNAL is set.
- Several processes (torchrun / accelerate launch): every rank runs this module; lmms-eval gathers
  the samples to rank 0, which annotates, writes and decides the exit code; other ranks fail only on
  their own errors.
- Signals: SIGTERM unwinds (engines are closed on the way out); the first Ctrl-C stops the run with
  one line (rerun the same command to resume), later ones are ignored while it unwinds.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from flex_models.errors import FlexJudgeError

JOURNAL_ENV = "FLEX_JUDGE_JOURNAL"
PROG = "flex-judge eval"
LISTINGS = ("list", "list_groups", "list_tags", "list_subtasks")
# lmms-eval CLI features this driver does not reproduce: refused with the plain lmms-eval command
# to use instead, never silently dropped
UNSUPPORTED = ("config", "wandb_args", "swanlab_args", "power_analysis")


class UsageError(FlexJudgeError, ValueError):
    """A setting of the command line is at fault: exit code 2, before any model loads."""


@dataclass(frozen=True)
class FlexOptions:
    """flex's own options of `flex-judge eval` (lmms-eval's are parsed by lmms-eval's parser)."""

    verbose: bool = False
    journal_env: str | None = None  # FLEX_JUDGE_JOURNAL, read at the edge (main)
    hf_token: str | None = None  # HF_TOKEN, for lmms-eval's tracker (hub pushes), as its CLI passes it


# flex's own options and settings, as `flex-judge eval --help` prints them: (name, default, meaning)
FLEX_HELP = (
    ("--num_processes N", "1", "N > 1: torchrun --standalone --nproc-per-node N on this host (flex-judge eval only)"),
    ("--verbose", "off", "full tracebacks instead of one-line errors"),
    ("--model", "flex", "lmms-eval's option; flex-judge eval defaults it to the flex model"),
    ("--include_path", "the flex task folder", "your folder is indexed beside it"),
)
ENV_HELP = (
    ("FLEX_JUDGE_DATA", "unset", "'fixtures': every flex task reads the bundled mini copies"),
    ("FLEX_<BENCH>_PATH", "unset (hub or error)", "a benchmark's local copy, e.g. FLEX_VL_REWARDBENCH_PATH"),
    ("FLEX_JUDGE_RUNS", "the protocol's", "runs per item of multi-run tasks (fewer: a partial run)"),
    ("FLEX_JUDGE_BOOTSTRAP_ITERS", "the protocol's", "bootstrap iterations of the _ci95 metrics"),
    ("FLEX_JUDGE_JOURNAL", "<output_path>/flex_journal", "the flex model's resume journal (model_args journal= wins)"),
)


def flex_help() -> str:
    rows = [f"{PROG}: lmms-eval with the flex tasks; exit 0 ok, 1 evaluation error or a task without "
            "results, 2 a setting at fault (before any model loads), 130 interrupted.", "",
            "flex-judge options:"]
    rows += [f"  {n:<22} default: {d:<28} {m}" for n, d, m in FLEX_HELP]
    rows += ["", "environment settings:"]
    rows += [f"  {n:<28} default: {d:<28} {m}" for n, d, m in ENV_HELP]
    rows += ["", "model_args of the flex model: README 'flex model_args'; a value may not hold a real newline "
             "(write \\n).", "", "lmms-eval options:"]
    return "\n".join(rows)


# ------------------------------------------------------------------ task names and pre-flight
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


def _suggest(name: str, known) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def unknown_flex_tasks(tasks_arg: str | None) -> list[str]:
    """`--tasks` names that look like flex tasks (``flex_`` prefix) but are none, each with the
    closest real name: a typo fails here, before any model loads, not after lmms-eval's start-up."""
    from flex_tasks.protocol import GROUPS, TASKS

    known = set(TASKS) | set(GROUPS)
    return [_suggest(name, known) for name in (n.strip() for n in (tasks_arg or "").split(","))
            if name.startswith("flex_") and name not in known and not any(c in name for c in "*?[")]


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
        print(f"{PROG}: unknown flex task(s): {', '.join(unknown)}; `flex-judge eval --tasks list` "
              "lists them", file=sys.stderr)
        return 2
    return 0


def _run_preflight(tasks_arg, limit) -> dict:
    from flex_tasks.data import DataError

    try:
        return preflight(requested_flex_tasks(tasks_arg), limit=float(limit) if limit is not None else None)
    except (DataError, KeyError, ValueError) as e:
        raise UsageError(f"data pre-flight failed, no model was loaded:\n  {e}") from e


def preflight_or_exit(argv: list[str]) -> int:
    """The pre-flight of an lmms-eval command line, outside lmms-eval (the launcher of
    `--num_processes`): 2 (with the message) when a task name, a model_args value or a requested
    flex task's data is at fault, else 0."""
    rc = check_task_names(argv)
    if rc:
        return rc
    try:
        check_model_args(cli_option(argv, "--model_args") or "")
        _run_preflight(cli_option(argv, "--tasks"), cli_option(argv, "--limit"))
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    return 0


def check_model_args(model_args: str) -> None:
    """Refuse a model_args string holding a real newline (or carriage return): lmms-eval's parser
    strips the ends of the string and of each value, so ``assistant_prefix=<think>\\n`` typed with a
    real newline would silently become ``<think>``. The flex model reads the two characters
    ``\\n`` as a newline, so that is what to write."""
    for part in model_args.split(","):
        if "\n" in part or "\r" in part:
            key = part.split("=", 1)[0].strip() if "=" in part else part.strip()
            raise UsageError(f"--model_args {key}=...: the value holds a real newline, which lmms-eval's "
                             f"argument parser strips; write it as the two characters \\n "
                             f"(e.g. assistant_prefix=<think>\\n)")


# ------------------------------------------------------------------ task index
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


# ------------------------------------------------------------------ provenance and details
def flex_details(samples: dict) -> dict:
    """task -> the bookkeeping of its report (flex_tasks.lmms.details_of), from the records in
    lmms-eval's per-document samples (each line holds its record under the task's first metric).
    The report is the aggregation's own (flex_tasks.lmms.report_for, seeded), so the printed
    metrics and these details come from the same computation."""
    from flex_tasks.lmms import details_of, report_for
    from flex_tasks.protocol import TASKS

    out = {}
    for task, rows in (samples or {}).items():
        spec = TASKS.get(task)
        if spec is None or not rows:
            continue
        first = spec.metric_names()[0][0]
        records = [r[first] for r in rows if isinstance(r.get(first), dict)]
        if records:
            out[task] = details_of(spec, report_for(records))
    return out


def annotate(results: dict, provenance: dict, details: dict) -> dict:
    """`results` with ``flex_provenance`` and ``flex_details`` for the tasks it has results for."""
    from flex_tasks.provenance import package_provenance

    have = results.get("results") or {}
    results["flex_provenance"] = {"package": package_provenance(),
                                  "tasks": {t: p for t, p in provenance.items() if t in have}}
    mine = {t: d for t, d in details.items() if t in have}
    if mine:
        results["flex_details"] = mine
    return results


def cli_option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` / ``--name=VALUE`` in an lmms-eval command line (last wins)."""
    value = None
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(name + "="):
            value = a[len(name) + 1:]
    return value


def with_journal(model: str, model_args: str, output_path: str | None, journal_env: str | None) -> str:
    """model_args with ``journal=<output_path>/flex_journal`` for the flex model, unless model_args
    or env FLEX_JUDGE_JOURNAL already name one."""
    from flex_models.args import parse_kv

    if model != "flex" or not output_path or journal_env:
        return model_args
    try:
        if "journal" in parse_kv(model_args, "--model_args"):
            return model_args
    except ValueError:
        return model_args  # the flex model names the malformed part when it parses its arguments
    path = str(Path(output_path) / "flex_journal")
    if "," in path or "=" in path:
        raise UsageError(f"--output_path {output_path!r}: a ',' or '=' cannot go into model_args; "
                         "give model_args journal=DIR or env FLEX_JUDGE_JOURNAL")
    return f"{model_args},journal={path}" if model_args.strip() else f"journal={path}"


# ------------------------------------------------------------------ lmms-eval
def lmms_parser() -> argparse.ArgumentParser:
    """lmms-eval's own argument parser. `parse_eval_args` builds it and parses sys.argv, so it is
    called on the bare program name (every default) and the parser it returns parses ours."""
    import lmms_eval.__main__ as lmms_cli

    saved = sys.argv
    sys.argv = ["lmms-eval"]
    try:
        parser, _ = lmms_cli.parse_eval_args()
    finally:
        sys.argv = saved
    parser.prog = PROG
    return parser


def _validate(args) -> None:
    """lmms-eval's own argument checks (its CLI makes them in cli_evaluate_single), as UsageErrors."""
    for name in UNSUPPORTED:
        if getattr(args, name, None):
            raise UsageError(f"--{name} is lmms-eval CLI-only: run `lmms-eval --model flex --include_path "
                             f"\"$(flex-judge tasks-path)\" ...` for it")
    if not args.tasks:
        raise UsageError("--tasks is required (`--tasks list` lists them)")
    if args.predict_only:
        args.log_samples = True
    if args.log_samples and not args.output_path:
        raise UsageError("--log_samples / --predict_only need --output_path")
    if args.fewshot_as_multiturn and not args.apply_chat_template:
        raise UsageError("--fewshot_as_multiturn needs --apply_chat_template")
    if args.fewshot_as_multiturn and not args.num_fewshot:
        raise UsageError("--fewshot_as_multiturn needs --num_fewshot > 0")
    if args.limit is not None and args.limit < 0 and args.limit != -1:
        raise UsageError(f"--limit {args.limit}: must be -1 or non-negative")
    if args.offset < 0:
        raise UsageError(f"--offset {args.offset}: must be >= 0")


def _log_to_stderr(level: str) -> None:
    from loguru import logger

    logger.remove()  # this process's log sinks: lmms-eval's CLI resets them the same way
    logger.add(sys.stderr, level=level, format="{time:YYYY-MM-DD HH:mm:ss} | {level: <8} | {name}:{line} - {message}")


def evaluate(argv: list[str], opts: FlexOptions) -> int:
    parser = lmms_parser()
    args = parser.parse_args(argv)
    _validate(args)
    check_model_args(args.model_args or "")
    provenance = _run_preflight(args.tasks, args.limit)
    args.model_args = with_journal(args.model, args.model_args or "", args.output_path, opts.journal_env)
    user_include = args.include_path
    from flex_judge.cli import tasks_path

    args.include_path = [p for p in (user_include, str(tasks_path())) if p]
    _log_to_stderr(args.verbosity)

    from lmms_eval.tasks import TaskManager

    listing = args.tasks in LISTINGS
    requested = [t.strip() for t in args.tasks.split(",") if t.strip()]
    task_manager = task_manager_factory(TaskManager, requested, listing)(
        args.verbosity, include_path=args.include_path, model_name=args.model)
    if listing:
        return list_tasks(task_manager, args.tasks)
    names = task_manager.match_tasks(requested)
    absent = [t for t in requested if t not in names and not any(c in t for c in "*?[")]
    if absent:
        raise UsageError(f"--tasks: not found: {', '.join(_suggest(t, task_manager.all_tasks) for t in absent)}")
    return _run(args, names, requested, task_manager, provenance, opts)


def list_tasks(task_manager, which: str) -> int:
    if which == "list":
        print("\n".join(sorted(task_manager.all_tasks)))
    else:
        kinds = {"list_groups": "list_groups", "list_tags": "list_tags", "list_subtasks": "list_subtasks"}
        flags = {k: k == kinds[which] for k in kinds.values()}
        print(task_manager.list_all_tasks(**flags))
    return 0


def _run(args, names: list, requested: list[str], task_manager, provenance: dict, opts: FlexOptions) -> int:
    import datetime

    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs
    from lmms_eval import evaluator, utils
    from lmms_eval.loggers import EvaluationTracker
    from loguru import logger

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        accelerator, main_process = None, torch.distributed.get_rank() == 0
    else:  # as lmms-eval's CLI: accelerate sets up the process group of a multi-process launch
        accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(timeout=datetime.timedelta(seconds=60000))])
        main_process = accelerator.is_main_process
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()

    tracker_args = args.hf_hub_log_args + (f",output_path={args.output_path}" if args.output_path else "")
    tracker_args += f",token={opts.hf_token}" if opts.hf_token else ""
    tracker = EvaluationTracker(**utils.simple_parse_args_string(tracker_args))
    datetime_str = utils.get_datetime_str(timezone=args.timezone)
    caching = evaluator.request_caching_arg_to_dict(cache_requests=args.cache_requests)

    errors: list[str] = []
    sink = logger.add(lambda m: errors.append(m.record["message"]), level="ERROR")
    try:
        results = evaluator.simple_evaluate(
            model=args.model, model_args=args.model_args, tasks=names, num_fewshot=args.num_fewshot,
            batch_size=args.batch_size, max_batch_size=args.max_batch_size, device=args.device,
            use_cache=args.use_cache, limit=args.limit, offset=args.offset, check_integrity=args.check_integrity,
            write_out=args.write_out,
            log_samples=True,  # the samples carry the records flex_details is computed from; saved only when asked
            evaluation_tracker=tracker, system_instruction=args.system_instruction,
            apply_chat_template=args.apply_chat_template, fewshot_as_multiturn=args.fewshot_as_multiturn,
            gen_kwargs=args.gen_kwargs, task_manager=task_manager, verbosity=args.verbosity,
            predict_only=args.predict_only, random_seed=args.seed[0], numpy_random_seed=args.seed[1],
            torch_random_seed=args.seed[2], fewshot_random_seed=args.seed[3], cli_args=args,
            datetime_str=datetime_str, distributed_executor_backend="torchrun" if distributed else "accelerate",
            force_simple=args.force_simple, launcher_args=args.launcher_args, repeats=args.repeats,
            baseline=args.baseline, max_tokens=args.max_tokens,
            process_docs_parallel=getattr(args, "process_docs_parallel", 4), **caching)
        if accelerator is not None:
            accelerator.wait_for_everyone()
        elif distributed:
            torch.distributed.barrier()
    finally:
        logger.remove(sink)

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        main_process = torch.distributed.get_rank() == 0  # the model may have set up the group itself
    if not main_process:  # rank 0 aggregates and writes; another rank fails only on its own errors
        return _verdict(errors, [])
    if results is None:
        return _verdict(errors, requested)
    samples = results.pop("samples", None) or {}
    annotate(results, provenance, flex_details(samples))
    tracker.save_results_aggregated(results=results, samples=samples if args.log_samples else None,
                                    datetime_str=datetime_str)
    if args.log_samples:
        for task_name in results["configs"]:
            tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    print(f"{args.model} ({args.model_args}), gen_kwargs: ({args.gen_kwargs}), limit: {args.limit}, "
          f"offset: {args.offset}, num_fewshot: {args.num_fewshot}, batch_size: {args.batch_size}")
    print(utils.make_table(results))
    if "groups" in results:
        print(utils.make_table(results, "groups"))
    return _verdict(errors, missing_tasks(requested, results))


def _verdict(errors: list[str], missing: list[str]) -> int:
    if not errors and not missing:
        return 0
    print(f"{PROG}: FAILED", file=sys.stderr)
    for e in errors[:10]:
        print(f"  lmms-eval error: {e.splitlines()[0] if e else e}", file=sys.stderr)
    if missing:
        print(f"  no results for requested task(s): {', '.join(missing)}", file=sys.stderr)
    return 1


# ------------------------------------------------------------------ entry
def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds: engine workers are closed on the way out


def _interrupt_once(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the unwinding
    raise KeyboardInterrupt


def split_flex_options(argv: list[str], env: dict) -> tuple[list[str], FlexOptions]:
    """(lmms-eval's argv, flex's options): ``--verbose`` is flex's; `--model flex` is the default."""
    rest = [a for a in argv if a != "--verbose"]
    if "--model" not in rest and not any(a.startswith("--model=") for a in rest):
        rest += ["--model", "flex"]
    return rest, FlexOptions(verbose="--verbose" in argv, journal_env=env.get(JOURNAL_ENV) or None,
                             hf_token=env.get("HF_TOKEN") or None)


def main(argv: list[str] | None = None, env: dict | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(flex_help())
        lmms_parser().print_help()
        return 0
    argv, opts = split_flex_options(argv, os.environ if env is None else env)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _exit_on_sigterm),
                    signal.SIGINT: signal.signal(signal.SIGINT, _interrupt_once)}
    try:
        return check_task_names(argv) or evaluate(argv, opts)
    except UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished judgments are journaled, rerun the same command to resume",
              file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI edge: one line, the traceback with --verbose
        if opts.verbose:
            import traceback

            traceback.print_exc()
        print(f"{PROG}: FAILED\n  {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
              + ("" if opts.verbose else " (--verbose for the traceback)"), file=sys.stderr)
        return 1
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


if __name__ == "__main__":
    raise SystemExit(main())
