"""Shared declarations of the audio MOS corpora (NISQA, BVCC, SOMOS, VoxSim): one task each,
one run, a score parsed from ``<answer>X</answer>``, utterance-level (and for some,
system-level) LCC / SRCC / MSE, one shared leaderboard table."""
from __future__ import annotations

from flex_tasks.benchmarks import Column, Section
from flex_tasks.protocol import TaskSpec, sampling, scale_of

UTTERANCE = (("lcc", True), ("srcc", True), ("mse", False))
SYSTEM = (("sys_lcc", True), ("sys_srcc", True), ("sys_mse", False))
SECTION_KEY, SECTION_TITLE = "audio_lcc_srcc", "Audio (LCC / SRCC)"


def audio_task(P: dict, bench: str, *, parser: str, default, headline, env: str, report_kwargs=None) -> TaskSpec:
    s = sampling(P, bench)
    return TaskSpec(
        task=f"flex_{bench}", bench=bench, variant="test", system=P[bench]["system"], user=P[bench]["user"],
        temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_tokens"], runs=1,
        order=None, parser=parser, parser_default=default, headline=tuple(headline),
        extra_metrics=(), env=env, modality="audio",
        limit_mm=P[bench].get("limit_mm_per_prompt", {"audio": 1}), report_kwargs=dict(report_kwargs or {}),
        scale=scale_of(P[bench]))


def section(*columns: tuple) -> tuple[Section, ...]:
    """This corpus's columns of the audio table: (name, task, metric, second metric)."""
    return (Section(SECTION_KEY, SECTION_TITLE, tuple(Column(*c) for c in columns)),)
