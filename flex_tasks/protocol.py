"""The one protocol table: every per-task setting, read off ``protocols.json``.

``TASKS`` maps an lmms-eval task name to a :class:`TaskSpec`. Prompts, sampling, run count,
order swaps, parse rule, metrics and data settings all come from here; the YAMLs under
``yaml_tasks/`` are generated from this table (``python -m yaml_tasks.generate``).
"""
from __future__ import annotations

import json
import os
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
# `flex_details` (flex_tasks.lmms.take_details, flex_judge.lmms_main).
DETAIL_KEYS = ("n_items", "n_runs", "parse_failures", "bootstrap_seed", "bootstrap_iters", "breakdown")
# The most rows a task may print in lmms-eval's results table (one per metric).
MAX_PRINTED_ROWS = 15


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


def _sampling(bench: str) -> dict:
    return protocols()[bench]["sampling"]


def _build() -> dict[str, TaskSpec]:
    P = protocols()
    specs: list[TaskSpec] = []

    s = _sampling("vl_rewardbench")
    specs.append(TaskSpec(
        task="flex_vl_rewardbench", bench="vl_rewardbench", variant="test",
        system=P["vl_rewardbench"]["system"], user=P["vl_rewardbench"]["user"],
        temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
        order="random_swap", parser="vlrb_better", parser_default=None,
        headline=(("overall_acc", True), ("macro_acc", True)),
        extra_metrics=(("general_acc", True), ("hallucination_acc", True), ("reasoning_acc", True),
                       ("overall_acc_official", True), ("macro_acc_official", True)),
        env="FLEX_VL_REWARDBENCH_PATH", hub=("MMInstruction/VL-RewardBench", None, "test"),
        multi_run=True, limit_mm=P["vl_rewardbench"]["limit_mm_per_prompt"]))

    s = _sampling("mj_bench")
    for split in ("alignment", "safety", "quality"):
        specs.append(TaskSpec(
            task=f"flex_mj_bench_{split}", bench="mj_bench", variant=split,
            system=P["mj_bench"]["system"][split], user=P["mj_bench"]["user_vl"],
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
            order="swap_odd_runs", parser="mj_pref", parser_default=None,
            headline=(("acc_w_tie", True), ("acc_wo_tie", True)), extra_metrics=(),
            env="FLEX_MJ_BENCH_PATH", hub=("MJ-Bench/MJ-Bench", None, split), image_size=336,
            multi_run=True, group="flex_mj_bench", limit_mm=P["mj_bench"]["limit_mm_per_prompt"]))

    g = P["genai_bench"]
    s = g["sampling"]
    video = {"fps": 1.0, "max_pixels": 224 * 224}
    for variant, config, kind in (("image", "image_generation", "Image"), ("editing", "image_edition", "Image"),
                                  ("video", "video_generation", "Video")):
        if variant == "editing":
            user = g["user_editing"]
        else:
            ph = "<|video_pad|>" if kind == "Video" else "<|image_pad|>"
            user = g["user_image_or_video"].replace("{Image|Video}", kind).replace("{placeholder}", ph)
        specs.append(TaskSpec(
            task=f"flex_genai_bench_{variant}", bench="genai_bench", variant=config,
            system=g["system"][variant], user=user,
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
            order=None, parser="genai_vote", parser_default=None,
            headline=(("acc_mean", True), ("acc_majority", True)), extra_metrics=(),
            env="FLEX_GENAI_BENCH_PATH", hub=("TIGER-Lab/GenAI-Bench", config, "test_v1"),
            image_size=None if variant == "video" else 448, video=video if variant == "video" else None,
            multi_run=True, group="flex_genai_bench", limit_mm=g["limit_mm_per_prompt"]))

    m = P["mllm_as_a_judge"]
    s = m["sampling"]
    for variant, parser, headline, extra in (
        ("score", "mllm_score", (("pearson", True),), (("pearson_as_released", True),)),
        ("pair", "mllm_pair", (("acc_w_tie", True), ("acc_wo_tie", True)), ()),
        ("batch", "mllm_batch", (("levenshtein", False),), (("levenshtein_as_released", False),)),
    ):
        user = m["user_batch"].split("\n\n... (")[0] if variant == "batch" else m[f"user_{variant}"]
        specs.append(TaskSpec(
            task=f"flex_mllm_judge_{variant}", bench="mllm_as_a_judge", variant=variant,
            system=m["system"][variant], user=user,
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=s["runs"],
            order=None, parser=parser, parser_default=None, headline=headline, extra_metrics=extra,
            env="FLEX_MLLM_JUDGE_PATH", image_size=448,
            stop=tuple(s["stop_score_split"]) if variant == "score" else ("<|im_end|>",),
            include_stop_str_in_output=bool(s["include_stop_str_in_output"]),
            multi_run=True, group="flex_mllm_judge", limit_mm={"image": 1}))

    utt = (("lcc", True), ("srcc", True), ("mse", False))
    sysl = (("sys_lcc", True), ("sys_srcc", True), ("sys_mse", False))
    nisqa_sets = ("FOR", "LIVETALK", "P501")  # per-set values: breakdown.per_set (the paper reports pooled)
    for bench, parser, default, headline, extra, kwargs, env in (
        ("nisqa", "answer_float", 3.0, utt, (), {"per_set": nisqa_sets}, "FLEX_NISQA_PATH"),
        ("bvcc", "bvcc_mos", None, utt + sysl, (), {"system_level": True}, "FLEX_BVCC_PATH"),
        ("somos", "answer_float", 3.0, utt + sysl, (), {"system_level": True}, "FLEX_SOMOS_PATH"),
        ("voxsim", "answer_float", 3.5, utt, (), {}, "FLEX_VOXSIM_PATH"),
    ):
        s = P[bench]["sampling"]
        specs.append(TaskSpec(
            task=f"flex_{bench}", bench=bench, variant="test", system=P[bench]["system"], user=P[bench]["user"],
            temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=1,
            order=None, parser=parser, parser_default=default, headline=headline,
            extra_metrics=extra, env=env, modality="audio",
            limit_mm=P[bench].get("limit_mm_per_prompt", {"audio": 1}), report_kwargs=kwargs))
    return {t.task: t for t in specs}


TASKS: dict[str, TaskSpec] = _build()

GROUPS: dict[str, list[str]] = {
    "flex_mllm_judge": ["flex_mllm_judge_score", "flex_mllm_judge_pair", "flex_mllm_judge_batch"],
    "flex_mj_bench": ["flex_mj_bench_alignment", "flex_mj_bench_safety", "flex_mj_bench_quality"],
    "flex_genai_bench": ["flex_genai_bench_image", "flex_genai_bench_editing", "flex_genai_bench_video"],
    "flex_vision": ["flex_mllm_judge", "flex_vl_rewardbench", "flex_mj_bench", "flex_genai_bench"],
    "flex_audio": ["flex_nisqa", "flex_bvcc", "flex_somos", "flex_voxsim"],
    "flex_all": ["flex_vision", "flex_audio"],
}


# Groups whose paper table has an overall column: lmms-eval computes it from the members'
# values (aggregate_metric_list), unweighted as the paper does (GenAI-Bench "overall").
GROUP_AGGREGATES: dict[str, tuple[str, ...]] = {"flex_genai_bench": ("acc_mean", "acc_majority")}


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
