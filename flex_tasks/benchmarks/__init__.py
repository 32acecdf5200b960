"""One module per benchmark: what differs between the paper's judge benchmarks, and only that.

Each module defines ``BENCHMARK``, a :class:`Benchmark` named by its ``protocols.json`` key:
how its data files / hub rows become items (``load``, with the shared readers and checks of
``flex_tasks.data``), its folder of bundled fixtures and how they are written (``write_fixtures``,
run by ``python -m flex_tasks.make_fixtures``), the template fields of a doc (with the
presentation order applied), the order its media are shown in, its user-message layout when the
protocol's single template is not enough, how an output is parsed back into the ORIGINAL order,
its report (records -> corpus metrics, with the shared machinery of ``flex_tasks.reports``) and
its text-only demo training example (``demo_example``, run by ``python -m trainer.make_demo_data``)
and, for pairwise text benchmarks, the doc of an API compare request (``compare_fields``).
Everything else is shared and table-driven (``flex_tasks.protocol`` TaskSpec: prompts,
sampling, runs, metric names). The modules with a leading underscore are shared helpers, not
benchmarks. Adding a benchmark = a module here + its entry in ``_MODULES`` + its protocol entry
+ the regenerated YAML and fixtures.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

from flex_tasks.parsing import PARSERS, Parsed


def no_fields(spec, doc) -> dict:
    return {}


def shown_order(spec, doc, refs: list) -> list:
    return refs


def parse_with_protocol_parser(spec, doc, text: str) -> Parsed:
    """The task's parser; protocols with a fallback value (audio MOS) pass it."""
    fn = PARSERS[spec.parser]
    return fn(text) if spec.parser_default is None else fn(text, spec.parser_default)


def no_loader(spec, source) -> list:
    raise NotImplementedError(f"flex_tasks.benchmarks: no loader for {spec.bench!r}")


def no_report(spec, records, **kwargs) -> dict:
    raise NotImplementedError(f"flex_tasks.benchmarks: no report for {spec.bench!r}")


def no_fixtures(root) -> None:
    raise NotImplementedError(f"flex_tasks.benchmarks: no fixture writer for {root}")


def no_demo_example(rng, spec) -> tuple:
    raise NotImplementedError(f"flex_tasks.benchmarks: no demo example for {spec.bench!r}")


@dataclass(frozen=True)
class Benchmark:
    name: str  # key in protocols.json (TaskSpec.bench)
    load: Callable = no_loader  # (spec, source folder or data.HUB) -> items (flex_tasks.data.load_items)
    fixtures: str = ""  # folder under flex_tasks/fixtures/ (default: name)
    fields: Callable = no_fields  # (spec, doc) -> template fields, presentation order applied
    media_order: Callable = shown_order  # (spec, doc, media refs in data order) -> refs as shown
    parse: Callable = parse_with_protocol_parser  # (spec, doc, text) -> Parsed, value in ORIGINAL order
    user_parts: Optional[Callable] = None  # (spec, doc) -> [(kind, text)] when spec.user is not enough
    report: Callable = no_report  # (spec, records, *, iters, seed) -> flat dict of metrics + protocol.DETAIL_KEYS
    write_fixtures: Callable = no_fixtures  # (folder) -> writes the bundled mini copy in the real layout
    demo_example: Callable = no_demo_example  # (random.Random, spec) -> (doc, media descriptions, reasoning, answer tags)
    compare_fields: Optional[Callable] = None  # (question, response_a, response_b) -> doc fields (flex_judge.judging.api compare_request)

    def __post_init__(self):
        if not self.fixtures:
            object.__setattr__(self, "fixtures", self.name)


# protocols.json key -> module of this package
_MODULES = {
    "vl_rewardbench": "vl_rewardbench", "mj_bench": "mj_bench", "genai_bench": "genai_bench",
    "mllm_as_a_judge": "mllm_as_a_judge", "nisqa": "nisqa", "bvcc": "bvcc", "somos": "somos", "voxsim": "voxsim",
}


@lru_cache(maxsize=None)
def get(bench: str) -> Benchmark:
    try:
        module = _MODULES[bench]
    except KeyError:
        raise KeyError(f"no benchmark module for {bench!r}; known: {', '.join(sorted(_MODULES))}") from None
    b = importlib.import_module(f"{__name__}.{module}").BENCHMARK
    if b.name != bench:
        raise RuntimeError(f"flex_tasks.benchmarks.{module} defines benchmark {b.name!r}, expected {bench!r}")
    return b


def of(spec) -> Benchmark:
    """The benchmark of a TaskSpec."""
    return get(spec.bench)


def registered() -> list[Benchmark]:
    """Every benchmark, in registry order."""
    return [get(bench) for bench in _MODULES]
