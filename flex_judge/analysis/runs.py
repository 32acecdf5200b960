"""lmms-eval output folders of flex tasks -> :class:`Run` objects (results + per-item records).

One *run* is one lmms-eval invocation: ``<output_path>/<model>/<date>_results.json`` plus, with
``--log_samples``, ``<date>_samples_<task>.jsonl`` beside it. Per-(item, run) records
(``flex_tasks.record.Record``) are logged once per sample line, under the task's first metric,
keyed by (``item``, ``run``) = the doc's ``flex_item`` / ``flex_run``; each carries its seed
and presentation order (``swap``).

Also here: the protocol check (does a run follow the paper's protocol for a task?), shared by
``leaderboard`` and ``compare``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

from flex_models import jsonl
from flex_models.errors import FlexJudgeError
from flex_tasks.protocol import DETAIL_KEYS, TASKS, TaskSpec
from flex_tasks.record import Record, RecordError

RESULTS_GLOB = "*_results.json"
RECORD_FIELDS = ("task", "item", "run", "seed", "swap", "pred", "ok", "how", "gold")
# results-file keys copied into a run's metadata when present (host info varies by version)
META_KEYS = ("lmms_eval_version", "git_hash", "git_branch", "date", "model_name", "model_source",
             "transformers_version", "pretty_env_info", "upper_git_hash", "total_evaluation_time_seconds",
             "start_time", "end_time", "chat_template_sha", "system_instruction")


class RunError(FlexJudgeError, ValueError):
    """An input that is not (or not a usable) lmms-eval output of flex tasks."""


@dataclass
class Run:
    results_file: Path
    data: dict = field(repr=False)
    label: str = ""
    duplicate_of: Optional[Path] = None  # set by load_runs when the same results were given earlier

    # ------------------------------------------------------------ metadata
    @property
    def folder(self) -> Path:
        return self.results_file.parent

    @property
    def date(self) -> str:
        return self.results_file.name[: -len("_results.json")]

    @property
    def config(self) -> dict:
        return self.data.get("config") or {}

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    @property
    def model_args(self) -> str:
        ma = self.config.get("model_args", "")
        return ma if isinstance(ma, str) else json.dumps(ma, sort_keys=True)

    def model_arg(self, key: str) -> Optional[str]:
        # lenient on purpose (another harness's model_args may hold parts without "="): not parse_kv
        pairs = (part.partition("=") for part in self.model_args.split(","))
        return {k.strip(): v.strip() for k, sep, v in pairs if sep}.get(key)

    def default_label(self) -> str:
        pretrained = self.model_arg("pretrained") or self.data.get("model_name") or ""
        name = Path(pretrained.rstrip("/")).name if pretrained else ""
        return f"{self.model}:{name}" if name else self.model

    @property
    def provenance(self) -> dict:
        """``flex_provenance`` written by ``flex-judge eval`` (empty for a plain lmms-eval run)."""
        return self.data.get("flex_provenance") or {}

    def metadata(self) -> dict:
        meta = {"label": self.label, "results_file": str(self.results_file), "model": self.model,
                "model_args": self.model_args, "limit": self.config.get("limit"),
                "gen_kwargs": self.config.get("gen_kwargs"), "batch_size": self.config.get("batch_size"),
                "device": self.config.get("device"), "random_seed": self.config.get("random_seed"),
                "task_versions": {t: v for t, v in (self.data.get("versions") or {}).items() if t in TASKS}}
        meta.update({k: self.data[k] for k in META_KEYS if k in self.data})
        # lmms-eval's own `lmms_eval_version` is `<branch>@<commit>` of the CURRENT FOLDER's git repo
        # (the user's checkout, not lmms-eval): report the installed versions flex-judge recorded.
        meta.pop("lmms_eval_version", None)
        pkg = self.provenance.get("package") or {}
        if pkg:
            meta["lmms_eval_version"] = pkg.get("lmms_eval_version")
            commit = (pkg.get("flex_judge_commit") or "")[:10]
            meta["flex_judge"] = (f"{pkg.get('flex_judge_version')}" + (f"@{commit}" if commit else "")
                                  + ("+dirty" if pkg.get("flex_judge_dirty") else ""))
            meta["data"] = {t: {k: v for k, v in p.items() if k != "partial_reasons"}
                            for t, p in (self.provenance.get("tasks") or {}).items()}
        return meta

    # ------------------------------------------------------------ tasks and metrics
    @property
    def tasks(self) -> list[str]:
        return [t for t in (self.data.get("results") or {}) if t in TASKS]

    def metric(self, task: str, name: str):
        """A metric as written in the results file (``<name>,none``); None if absent."""
        res = (self.data.get("results") or {}).get(task, {})
        for key in (f"{name},none", name):
            if key in res:
                return res[key]
        return None

    def details(self, task: str) -> dict:
        """A task's bookkeeping (``n_items``, ``n_runs``, ``parse_failures``, ``bootstrap_seed``,
        ``bootstrap_iters``, ``breakdown``): the results file's ``flex_details`` (written by
        ``flex-judge eval``); else the metrics of that name older results files held; else, for
        a plain lmms-eval run, the counts taken from its samples file ({} without one)."""
        found = (self.data.get("flex_details") or {}).get(task)
        if found is not None:
            return found
        legacy = {k: self.metric(task, k) for k in DETAIL_KEYS if self.metric(task, k) is not None}
        if legacy:
            return legacy
        try:
            recs = self.records(task)
        except RunError:
            return {}
        return {"n_items": len({r.item for r in recs}), "n_runs": len({r.run for r in recs}),
                "parse_failures": sum(1 for r in recs if not r.ok)}

    def task_config(self, task: str) -> dict:
        return (self.data.get("configs") or {}).get(task, {})

    def n_samples(self, task: str) -> dict:
        return (self.data.get("n-samples") or {}).get(task, {})

    # ------------------------------------------------------------ per-item records
    def samples_file(self, task: str) -> Path:
        path = self.folder / f"{self.date}_samples_{task}.jsonl"
        if not path.exists():
            hits = sorted(self.folder.glob(f"*_samples_{task}.jsonl"))
            if len(hits) == 1:
                return hits[0]
            raise RunError(f"{self.results_file}: no samples file for task {task} ({path.name}); "
                           f"re-run lmms-eval with --log_samples")
        return path

    def records(self, task: str) -> list[Record]:
        return self._records.get(task) or self._records.setdefault(task, load_records(self.samples_file(task), task))

    @cached_property
    def _records(self) -> dict:
        return {}


def _key_metric(spec: TaskSpec) -> str:
    return spec.metric_names()[0][0]


def load_records(path: Path, task: str) -> list[Record]:
    """Per-(item, run) records of one samples jsonl, parsed once (``Record.from_dict``, strict);
    a record without its raw output (``raw``) gets the line's response. Raises RunError naming
    the file and line when a line is not a flex-task record."""
    spec = TASKS[task]
    key = _key_metric(spec)
    out = []
    for line in jsonl.read(path, whole_file=True):
        n = line.line
        if line.error:
            raise RunError(f"{path}:{n}: {line.error}")
        row = line.value
        rec = row.get(key) if isinstance(row, dict) else None
        if not isinstance(rec, dict) or "item" not in rec or "run" not in rec:
            raise RunError(f"{path}:{n}: no per-item flex record under metric {key!r}; "
                           f"was this produced by the flex task {task} (flex_tasks.lmms.process_results)?")
        missing = [f for f in RECORD_FIELDS if f not in rec]
        if missing:
            raise RunError(f"{path}:{n}: the record lacks {missing}: written by an older flex-judge "
                           f"(before records carried their seed and presentation order); re-run the task")
        try:
            rec = Record.from_dict(rec, f"{path}:{n}")
        except RecordError as e:
            raise RunError(str(e)) from None
        if not rec.raw:
            resp = row.get("filtered_resps", row.get("resps"))
            while isinstance(resp, list) and resp:
                resp = resp[0]
            rec = dataclasses.replace(rec, raw=resp if isinstance(resp, str) else "")
        out.append(rec)
    seen = set()
    for r in out:
        k = (r.item, r.run)
        if k in seen:
            raise RunError(f"{path}: item {r.item!r} run {r.run} appears twice")
        seen.add(k)
    return out


# ---------------------------------------------------------------- discovery
def find_results(path: Path) -> list[Path]:
    """Results files of one argument: the file itself, or ``*_results.json`` in the folder or
    one level below (lmms-eval writes ``<output_path>/<model>/``)."""
    path = Path(path)
    if path.is_file():
        if not path.name.endswith("_results.json"):
            raise RunError(f"{path}: not an lmms-eval results file (expected <date>_results.json)")
        return [path]
    if not path.is_dir():
        raise RunError(f"{path}: no such file or folder")
    hits = sorted(path.glob(RESULTS_GLOB)) or sorted(path.glob(f"*/{RESULTS_GLOB}"))
    if not hits:
        raise RunError(f"{path}: not an lmms-eval output folder (no {RESULTS_GLOB} in it or one level below)")
    return hits


def load_run(results_file: Path, label: str = "") -> Run:
    try:
        data = json.loads(Path(results_file).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunError(f"{results_file}: cannot read results JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise RunError(f"{results_file}: not an lmms-eval results file (no 'results' object)")
    run = Run(Path(results_file), data)
    if not run.tasks:
        names = ", ".join(sorted(data["results"])) or "none"
        raise RunError(f"{results_file}: no flex tasks in this run (tasks: {names}); "
                       f"expected some of {', '.join(sorted(TASKS))}")
    run.label = label or run.default_label()
    return run


def load_runs(paths, labels: Optional[list[str]] = None, one_per_path: bool = False) -> list[Run]:
    files: list[Path] = []
    for p in paths:
        hits = find_results(Path(p))
        if one_per_path and len(hits) > 1:
            raise RunError(f"{p}: holds {len(hits)} results files ({', '.join(h.name for h in hits)}); "
                           f"pass one results file (or its folder) per judge")
        files.extend(hits)
    if labels and len(labels) != len(files):
        raise RunError(f"--labels gives {len(labels)} names for {len(files)} runs")
    runs = [load_run(f, labels[i] if labels else "") for i, f in enumerate(files)]
    first: dict = {}
    for r in runs:  # the same results given twice (same file, or a copy of it) is almost always a mistake
        key = hashlib.sha256(json.dumps(r.data, sort_keys=True, default=str).encode()).hexdigest()
        if key in first:
            print(f"warning: {r.results_file} is the same results as {first[key].results_file} "
                  f"(given twice?)", file=sys.stderr)
            r.duplicate_of = first[key].results_file
        else:
            first[key] = r
    seen: dict = {}
    for r in runs:  # make labels unique
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label}#{seen[r.label]}"
    return runs


# ---------------------------------------------------------------- protocol check
def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return v


def _truthy(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def protocol_deviations(run: Run, task: str) -> list[str]:
    """How this run of ``task`` differs from the paper's protocol (empty = follows it)."""
    spec = TASKS[task]
    out = []
    data_prov = (run.provenance.get("tasks") or {}).get(task)
    if data_prov is None:
        out.append("no data provenance (run it with `flex-judge eval`)")
    elif data_prov.get("source") == "fixtures":
        out.append("bundled fixtures, not the benchmark data")
    limit = run.config.get("limit")
    if limit not in (None, "", 0):
        # flex tasks count --limit in items (flex_tasks.lmms_task); lmms-eval's n-samples count docs
        n = _num(limit)
        out.append(f"--limit {int(n) if isinstance(n, float) and n.is_integer() else limit} "
                   f"(first {int(n) if isinstance(n, float) and n.is_integer() else limit} items, all runs)")
    n_runs = run.details(task).get("n_runs")
    want_runs = spec.runs if spec.multi_run else 1
    if n_runs is not None and int(n_runs) != want_runs:
        out.append(f"n_runs={int(n_runs)} (protocol {want_runs})")
    got = dict(run.task_config(task).get("generation_kwargs") or {})
    want = spec.generation_kwargs()
    if "temperature" in got and not _truthy(got.get("do_sample", want["do_sample"])):
        out.append("greedy decoding (do_sample=false; protocol samples)")
    for k in ("temperature", "top_p"):
        if k in got and _num(got[k]) != _num(want[k]):
            out.append(f"{k}={got[k]} (protocol {want[k]})")
    max_new = got.get("max_new_tokens", got.get("max_tokens"))
    if max_new is not None and _num(max_new) != _num(want["max_new_tokens"]):
        out.append(f"max_new_tokens={max_new} (protocol {want['max_new_tokens']})")
    if run.model == "flex":  # the flex model's own caps apply on top of the task's settings
        cap = run.model_arg("max_new_tokens")
        if cap is not None and _num(cap) < _num(want["max_new_tokens"]):
            out.append(f"model_args max_new_tokens={cap} caps the output (protocol {want['max_new_tokens']})")
        if spec.modality == "audio" and run.model_arg("audio_scaling") == "unit":
            out.append("model_args audio_scaling=unit (the paper's audio numbers were produced with the "
                       "released int16 scaling: audio_scaling=released)")
        if run.model_arg("assistant_prefix"):
            out.append(f"model_args assistant_prefix={run.model_arg('assistant_prefix')!r} (protocol: none)")
    stops = got.get("until", got.get("stop")) or []
    stops = [stops] if isinstance(stops, str) else list(stops)
    if sorted(stops) != sorted(want.get("until", [])):
        out.append(f"stop={stops} (protocol {want.get('until', [])})")
    if got.get("seed") is not None:
        out.append(f"seed={got['seed']} for every request (protocol: seed k for run k)")
    for k in ("n", "num_return_sequences", "top_k"):
        if got.get(k) not in (None, 0, 1, -1, "1"):
            out.append(f"{k}={got[k]}")
    return out


def swap_flags(task: str, records: list[Record]) -> dict:
    """(item, run) -> whether the responses/images were shown in swapped order (the record's
    ``swap``); empty for protocols without order swaps."""
    if TASKS[task].order is None:
        return {}
    return {(r.item, r.run): r.swap for r in records}


def json_safe(value):
    """JSON has no NaN: an undefined statistic (kappa of constant labels, a CI of one item) is
    written as null by every report (compare.json, the leaderboard's JSON)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
