"""The one protocol table: every per-task setting, read off ``protocols.json``.

``TASKS`` maps an lmms-eval task name to a :class:`TaskSpec`. Prompts, sampling, run count,
order swaps, parse rule, scale, metrics and data settings all come from here; the YAMLs under
``yaml_tasks/`` are generated from this table (``python -m yaml_tasks.generate``). Each
benchmark module of :mod:`flex_tasks.benchmarks` declares its own TaskSpecs from its
protocols.json entry; this module holds the TaskSpec type and the tables read off the registry.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from flex_models.render import PLACEHOLDERS as FAMILY_PLACEHOLDERS

PROTOCOLS_PATH = Path(__file__).with_name("protocols.json")

# Media placeholders as they appear in protocols.json user strings (Qwen2.5-VL / Omni): the
# model families' own table (flex_models.render), read as placeholder -> media kind.
PLACEHOLDERS = {ph: kind for family in FAMILY_PLACEHOLDERS.values() for kind, ph in family.items()}

RUNS_ENV = "FLEX_JUDGE_RUNS"
DATA_ENV = "FLEX_JUDGE_DATA"
BOOTSTRAP_ITERS_ENV = "FLEX_JUDGE_BOOTSTRAP_ITERS"
# Printed for every task beside its own metrics: a score is only as trustworthy as the share of
# outputs the protocol could read.
COMMON_METRICS = ("parse_failure_rate",)
# Bookkeeping every report returns as well. Not lmms-eval metrics (each metric is a row of the
# table lmms-eval prints): `flex-judge eval` writes them into the results file under
# `flex_details` (flex_tasks.lmms.details_of, computed by flex_judge.lmms_main from the returned samples).
DETAIL_KEYS = ("n_items", "n_runs", "parse_failures", "bootstrap_seed", "bootstrap_iters", "breakdown")
# The most rows a task may print in lmms-eval's results table (one per metric).
MAX_PRINTED_ROWS = 16  # NISQA: 3 pooled + 9 per-set values, 3 CIs, the parse-failure rate


@lru_cache(maxsize=1)
def protocols() -> dict:
    return json.loads(PROTOCOLS_PATH.read_text())


@dataclass(frozen=True)
class TaskSpec:
    task: str
    bench: str  # key in protocols.json
    variant: str  # split / config / sub-task inside the benchmark
    system: str
    user: str  # protocol user template: media placeholders + {fields}
    temperature: float
    top_p: float
    max_tokens: int
    runs: int  # protocol run count (multi-run protocols honour FLEX_JUDGE_RUNS)
    order: Optional[str]  # None | "random_swap" (VL-RewardBench) | "swap_odd_runs" (MJ-Bench)
    parser: str  # name in flex_tasks.parsing.PARSERS
    parser_default: Optional[float]  # fallback value for answer_float
    headline: tuple[tuple[str, bool], ...]  # (metric, higher_is_better)
    extra_metrics: tuple[tuple[str, bool], ...]
    env: str  # FLEX_<BENCH>_PATH
    hub: Optional[tuple[str, Optional[str], str]] = None  # (repo id, config, split)
    image_size: Optional[int] = None
    video: Optional[dict] = None
    stop: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    multi_run: bool = False
    group: Optional[str] = None
    modality: str = "vision"
    limit_mm: dict = field(default_factory=dict)
    report_kwargs: dict = field(default_factory=dict)  # for the benchmark module's report hook
    # the protocol's answer scale (protocols.json `scale`); a parsed number outside it is a
    # parse failure (flex_tasks.benchmarks.parse)
    scale: Optional[tuple[float, float]] = None

    def seed(self, run: int) -> int:
        """Per-run sampling seed. Protocols that seed with k use k; MJ-Bench and the audio
        scripts are unseeded upstream and get k too, so repeated runs reproduce."""
        return int(run)

    def n_runs(self) -> int:
        if not self.multi_run:
            return 1
        override = os.environ.get(RUNS_ENV)
        if override in (None, ""):
            return self.runs
        try:
            n = int(override)
        except ValueError:
            raise ValueError(f"{RUNS_ENV}={override!r}: expected a positive integer") from None
        if n < 1:
            raise ValueError(f"{RUNS_ENV}={override!r}: expected a positive integer")
        return n

    def metric_names(self) -> list[tuple[str, bool]]:
        names = list(self.headline) + list(self.extra_metrics)
        names += [(f"{m}_ci95", hib) for m, hib in self.headline]
        names += [(m, False) for m in COMMON_METRICS]
        return names

    def generation_kwargs(self) -> dict:
        g = {"max_new_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p, "do_sample": True}
        # Always explicit: with no `until`, lmms-eval adds ["\n\n"], which would cut the judge's
        # reasoning at its first blank line. The protocols stop only where they say so.
        g["until"] = list(self.stop)
        if self.include_stop_str_in_output:
            g["include_stop_str_in_output"] = True
        return g


def sampling(P: dict, bench: str) -> dict:
    """The sampling settings of a protocols.json entry (``temperature``, ``top_p``, ...)."""
    return P[bench]["sampling"]


def scale_of(entry: dict, variant: Optional[str] = None) -> Optional[tuple[float, float]]:
    """A protocols.json entry's answer scale (``scale``: [lo, hi], or one per variant)."""
    raw = entry.get("scale")
    if isinstance(raw, dict):
        raw = raw.get(variant)
    return None if raw is None else (float(raw[0]), float(raw[1]))


class _Lazy(Mapping):
    """A read-only table built from the benchmark registry on first use (the benchmark
    modules import this module, so the registry cannot be read at its import)."""

    def __init__(self, build):
        self._build, self._table = build, None

    def _t(self) -> dict:
        if self._table is None:
            self._table = self._build()
        return self._table

    def __getitem__(self, key):
        return self._t()[key]

    def __iter__(self):
        return iter(self._t())

    def __len__(self):
        return len(self._t())

    def __repr__(self):
        return repr(self._t())


def _tasks() -> dict[str, TaskSpec]:
    from flex_tasks import benchmarks

    specs = benchmarks.all_tasks()
    table = {t.task: t for t in specs}
    if len(table) != len(specs):
        raise RuntimeError("flex_tasks.benchmarks: two benchmarks declare the same task name")
    return table


def _groups() -> dict[str, list[str]]:
    from flex_tasks import benchmarks

    return benchmarks.groups()


def _group_aggregates() -> dict[str, tuple[str, ...]]:
    from flex_tasks import benchmarks

    return benchmarks.group_aggregates()


# task -> TaskSpec, every benchmark's tasks in registry order
TASKS: Mapping[str, TaskSpec] = _Lazy(_tasks)
# lmms-eval group -> member tasks / groups: the benchmarks' groups, the suites, flex_all
GROUPS: Mapping[str, list[str]] = _Lazy(_groups)
# Groups whose paper table has an overall column: lmms-eval computes it from the members'
# values (aggregate_metric_list), unweighted as the paper does.
GROUP_AGGREGATES: Mapping[str, tuple[str, ...]] = _Lazy(_group_aggregates)


def get(task: str) -> TaskSpec:
    try:
        return TASKS[task]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(task, TASKS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown flex task {task!r}.{hint} Available: {', '.join(sorted(TASKS))}") from None


def bootstrap_iters() -> int:
    raw = os.environ.get(BOOTSTRAP_ITERS_ENV, "")
    if raw == "":
        from flex_tasks.metrics import DEFAULT_BOOTSTRAP_ITERS

        return DEFAULT_BOOTSTRAP_ITERS
    try:
        return max(0, int(raw))
    except ValueError:
        raise ValueError(f"{BOOTSTRAP_ITERS_ENV}={raw!r}: expected a non-negative integer") from None
